// Package migrate loads a store driver's embedded, numbered SQL migrations and
// decides which of them a database still needs.
//
// It is deliberately small and database-neutral: each driver (SQLite,
// PostgreSQL) keeps its own migrations/NNNN_name.sql files in an embed.FS,
// runs them in its own transactions with its own locking, and records applied
// versions in a schema_version table. What the drivers share is here: the file
// naming rules, the check that the numbering has no gaps, and the refusal to
// touch a database written by a newer tasuki, whose schema this binary does
// not understand.
package migrate
