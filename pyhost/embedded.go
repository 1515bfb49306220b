package pyhost

import (
	"errors"
	"time"

	"github.com/pybridge/pybridge/bridge/wire"
)

// Transport is one connection's messages for a connection served by the embedded
// interpreter (Embedded.Serve): a client's socket, framed by Go.
type Transport interface {
	wire.MessageStream
	// WaitMessage waits up to d for the next message to start arriving; false when d
	// passed first.
	WaitMessage(d time.Duration) (bool, error)
}

// Isolations.
const (
	IsolationShared     = "shared"     // spawned workers, connections spread over them
	IsolationConnection = "connection" // a spawned worker per connection
	IsolationEmbedded   = "embedded"   // Python inside this process
)

// ErrCannotEmbed: the interpreter cannot run embedded in this process (it has no
// shared library, is older than 3.9 or free-threaded, or this binary was built without
// cgo). The spawned isolations still work.
var ErrCannotEmbed = errors.New("pyhost: cannot embed this interpreter")
