// Package audience is pinlist's domain: it turns AEP audience-membership payloads
// into hashed membership changes for Pinterest customer lists, and coalesces and
// groups those changes. Their queue message format is package wire's. It does
// no I/O.
package audience
