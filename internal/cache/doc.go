// Package cache computes the keys of tasuki's content cache (`cache:` on a
// task): a task attempt, or an item of a map, whose key matches a stored
// entry is not run, and the entry's result and output files are reused.
// The store keeps the entries (store.Cache); the runner looks keys up
// before it runs and puts entries after a success; this package says what
// a key is, so that the same inputs give the same key on every machine and
// in every release that keeps the scheme, and different inputs never do.
//
// A key is the hex SHA-256 of a canonical encoding (KeyScheme): every field
// is named and length-prefixed, maps are written in sorted key order and
// JSON values are decoded and written as typed values (so whitespace and
// the order of an object's keys do not matter). It covers the task's
// definition (kind, body, working directory, declared outputs), the
// content of its declared input files, cache.version and the map item,
// and either the attempt's variables, secrets and needs' results or, when
// the task gives cache.key, that expression's value instead.
//
// What a key reveals: nothing usable. It is a one-way digest, and a secret
// enters it only as the SHA-256 of a domain-separated encoding of its name
// and value, so no secret is ever held in clear by the key or what stores
// it. As for any digest, someone who knows every other input of a task
// could test guesses of a secret against its key; secrets are credentials
// and must not be guessable.
package cache
