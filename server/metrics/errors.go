package metrics

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"

	"github.com/pybridge/pybridge/bridge/wire"
)

// ErrorKind is the kind label of pybridge_errors_total.
type ErrorKind int

const (
	// KindMalformedFrame: a frame or message that is not rpyc (bad header, zlib, brine or
	// layout); the connection is closed.
	KindMalformedFrame ErrorKind = iota
	// KindDialectMismatch: a client spoke the other layout than the one a write before its
	// first frame had to assume; the connection is closed.
	KindDialectMismatch
	// KindOverLimit: a frame or its inflation over the size limits (the connection is
	// closed), or a value over the nesting, items or digits limits (that request fails
	// alone).
	KindOverLimit
	// KindWorkerCrash: a connection ended because its worker died unasked.
	KindWorkerCrash
	// KindNoWorker: no worker connection could be opened for a client.
	KindNoWorker
	// TLS: the TLS handshake or a record failed.
	KindTLS
	// KindOther: any other error that ended a connection.
	KindOther
	numKinds
)

var kindNames = [numKinds]string{"malformed_frame", "dialect_mismatch", "over_limit", "worker_crash", "no_worker", "tls", "other"}

func (k ErrorKind) String() string { return kindNames[k] }

// ErrNoWorker marks a connection that got no worker connection: Close(errors.Join(
// ErrNoWorker, err)) counts it as KindNoWorker.
var ErrNoWorker = errors.New("no worker connection")

// Classify tells the kind of error that ended a connection; false when it is no error
// of the server's: nil, the client going away (io.EOF and the like are mapped to nil
// before), or the server shutting down (a canceled context, a worker stopped on
// shutdown).
func Classify(err error) (ErrorKind, bool) {
	if err == nil || errors.Is(err, context.Canceled) {
		return 0, false
	}
	var ol *wire.OverLimitError
	var fe *wire.FrameError
	var de *wire.DialectError
	var worker interface{ Crashed() bool }
	switch {
	case errors.Is(err, ErrNoWorker):
		return KindNoWorker, true
	case errors.As(err, &ol), errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrInflateTooLarge):
		return KindOverLimit, true
	case errors.Is(err, wire.ErrDialectMismatch):
		return KindDialectMismatch, true
	case errors.As(err, &fe), errors.As(err, &de):
		return KindMalformedFrame, true
	case errors.As(err, &worker): // *pyhost.WorkerExitError
		if !worker.Crashed() {
			return 0, false
		}
		return KindWorkerCrash, true
	case isTLS(err):
		return KindTLS, true
	}
	return KindOther, true
}

func isTLS(err error) bool {
	var rh tls.RecordHeaderError
	var alert tls.AlertError
	var cv *tls.CertificateVerificationError
	if errors.As(err, &rh) || errors.As(err, &alert) || errors.As(err, &cv) {
		return true
	}
	// crypto/tls reports most handshake failures as plain errors
	return strings.HasPrefix(err.Error(), "tls: ") || strings.Contains(err.Error(), ": tls: ")
}
