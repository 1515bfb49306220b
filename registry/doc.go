// Package registry speaks rpyc's service registry protocol (rpyc.utils.registry), both
// sides, over UDP and TCP: Registry is a registry server (what `pybridge registry` runs,
// in place of rpyc_registry), Client is a registrar (what `pybridge serve --register`
// uses, as rpyc's servers do with auto_register), and Client.Announce keeps a server
// registered until it stops.
//
// The protocol is the same in rpyc 5.x and 6.x. A request is one brine value,
// ("RPYC", command, args), in one UDP datagram or on a fresh TCP connection; the reply is
// one brine value, and the TCP connection is then closed:
//
//	REGISTER   (names, port)  -> "OK"      names: a tuple of str; the host is the sender's address
//	UNREGISTER (port,)        -> "OK"      removes the sender's host and port under every name
//	QUERY      (name,)        -> ((host, port), ...), oldest registration first
//	LIST       ((host,),)     -> (name, ...), or None when listing is disabled;
//	                             host None or "" lists every name, else the names it serves
//
// Names are case-insensitive (stored upper-cased). A registration not renewed within the
// pruning timeout (rpyc's default: 4 minutes) is dropped; rpyc's servers renew theirs
// every 60 s (ReregisterInterval). A request that is not valid brine, lacks the "RPYC"
// magic, names an unknown command or carries arguments of the wrong kinds gets no reply,
// as from rpyc's own registry; Registry logs it and goes on.
package registry

import "time"

const (
	// DefaultPort is rpyc's REGISTRY_PORT, for UDP and TCP alike.
	DefaultPort = 18811
	// DefaultPruningTimeout is rpyc's DEFAULT_PRUNING_TIMEOUT: a registration older
	// than this is stale.
	DefaultPruningTimeout = 4 * time.Minute
	// ReregisterInterval is how often rpyc's servers renew their registration
	// (RegistryClient.REREGISTER_INTERVAL).
	ReregisterInterval = 60 * time.Second
	// DefaultTimeout is how long a Client waits for a registry's reply (rpyc's default
	// registrar timeout).
	DefaultTimeout = 2 * time.Second
	// DefaultBroadcast is where a UDP Client without a Host sends: the local network's
	// broadcast address, as rpyc's UDPRegistryClient.
	DefaultBroadcast = "255.255.255.255"
	// maxMessage bounds one request or reply (a UDP datagram's payload is at most
	// 65507 bytes; rpyc's registry reads 1500, its MAX_DGRAM_SIZE, and fails on more).
	maxMessage = 64 << 10
)
