// Package bridge is pybridge's RPyC peer engine in Go.
//
// A Conn is one side of a symmetric RPyC connection over any wire.MessageStream: an
// rpyc server's socket (Dial, in the 5.x or 6.x layout), or a pybridge worker's channel
// (package pyhost). It sends requests (Ref.Attr, Ref.Call, Conn.Eval, …) and, at the
// same time, serves the peer's requests on the Go values it handed over: a Go func
// passed as an argument becomes a Python callable. Each incoming request is served on
// its own goroutine, so calls nest and re-enter freely. Requests are synchronous with a
// context (Request, and the Ref methods), awaitable (Async, then AsyncResult.Wait), or
// fire-and-forget (AsyncRequest; DEL always is): a reply nobody waits for any more is
// released, never leaked.
//
// Values follow RPyC's rule: immutable values (package brine's value model) travel by
// value, everything else by reference. A reference to a Python object is a *Ref. Refs
// live in a weak cache keyed by the object's id_pack: one locked lookup hands out a
// strong *Ref or nothing, so the collector cannot drop an entry between lookup and use,
// and when a Ref becomes unreachable its cleanup sends DEL with the exact number of
// times the peer sent the object. Python exceptions arrive as *RemoteError (module,
// type, args, attributes, remote traceback).
//
// Relay is the other half of pybridge: it carries an rpyc client's messages 1:1 to a
// worker, and Go interprets none of them.
package bridge
