// Package spec defines the pipeline file format (version 1) as plain Go values,
// parses YAML pipeline files into them, validates them with errors that point at
// file:line:col, and generates the JSON Schema of the format from the same
// definitions, so the parser, the validator and editors never disagree.
//
// The types here are the single source of truth of the format. Struct tags give
// the YAML key (`yaml`), the description that ends up in the JSON Schema and in
// docs/pipeline-reference.md (`doc`), and the constraints that both the parser
// and the schema enforce: `required:"true"`, `enum:"a,b"`, `pattern:"id"` (a
// named syntax, see namePatterns), `min`/`max` (inclusive bounds of numbers) and
// `aka` (keys other tools use for the same thing, only for "did you mean"
// hints). Keys kept for later versions of the format live in reservedKeys.
//
// Parse, ParseFile, LoadDir and LoadPaths read pipelines; Schema renders the
// JSON Schema; Pipeline.ResolveParams and Pipeline.ParamEnv turn the parameters of a run
// into typed values and environment variables.
package spec
