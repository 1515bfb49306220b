package bridge_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pybridge/pybridge/bridge"
)

// selfSigned writes a key and certificate for 127.0.0.1 and returns their paths and a
// pool that trusts the certificate.
func selfSigned(t *testing.T) (keyFile, certFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pybridge test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, certFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return keyFile, certFile, pool
}

// rpyc's SSLAuthenticator server, reached with WithTLS (the layout still probed); the
// same server dialled without TLS fails rather than hangs.
func TestDialTLS(t *testing.T) {
	keyFile, certFile, pool := selfSigned(t)
	for _, venv := range []string{"rpyc5", "rpyc6"} {
		t.Run(venv, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			network, addr := startRpycServer(t, venv, "classic", "", "RPYC_TLS_KEY="+keyFile, "RPYC_TLS_CERT="+certFile)
			conn, err := bridge.Dial(ctx, network, addr, bridge.WithTLS(&tls.Config{RootCAs: pool}))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if v, err := conn.Eval(ctx, "'tls ' + str(6 * 7)"); err != nil || v != "tls 42" {
				t.Errorf("eval over TLS = %v, %v", v, err)
			}
			plain, err := bridge.Dial(ctx, network, addr, bridge.WithProbeTimeout(5*time.Second))
			if err == nil {
				plain.Close()
				t.Error("a TLS server answered a plain connection")
			}
		})
	}
}
