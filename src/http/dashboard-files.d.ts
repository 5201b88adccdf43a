// The dashboard's stylesheet is imported as text (so the compiled binary carries it).
declare module "*.css" {
  const text: string
  export default text
}
