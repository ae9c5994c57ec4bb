// Package secret keeps the secrets pipelines refer to: sealed at rest in
// the store with AES-256-GCM, looked up (with the server's environment and
// a secrets directory) when an attempt starts, and never written anywhere
// in clear.
//
// Each value is sealed with a random 96-bit nonce and the secret's name as
// additional data, so a sealed value copied onto another name does not
// open. The key comes from $TASUKI_SECRET_KEY (base64 of 32 bytes) or a key
// file, by default <home>/secret.key, created with mode 0600 when a secret
// is first set. Every sealed value records the id of its key, so a rotation
// can find and re-seal what an old key sealed (Store.RotateKey).
package secret
