// Quiet logs in tests unless asked for: the assertions say what matters.
process.env.LOG_LEVEL ??= "warning"
