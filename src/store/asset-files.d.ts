// PGlite's runtime files, imported `with { type: "file" }`: a path (on disk from source, inside the binary when compiled).
declare module "*.wasm" {
  const path: string
  export default path
}
declare module "*.data" {
  const path: string
  export default path
}
declare module "*.tar.gz" {
  const path: string
  export default path
}
