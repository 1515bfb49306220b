package pyhost

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestServiceAliases(t *testing.T) {
	dir := t.TempDir()
	src := `print("noise from the import", end="")
from pybridge import Service

class EchoService(Service):
    pass

class Named(Service):
    ALIASES = ["first", "Second"]

class PlainService:  # no get_service_aliases: rpyc's rule on the class name
    pass

instance = Named()
`
	if err := os.WriteFile(filepath.Join(dir, "svcmod.py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Python: testPython(t), Dir: dir}
	for spec, want := range map[string][]string{
		"svcmod:EchoService":  {"ECHO"},
		"svcmod:Named":        {"FIRST", "SECOND"},
		"svcmod:PlainService": {"PLAIN"},
		"svcmod:instance":     {"FIRST", "SECOND"},
	} {
		got, err := ServiceAliases(context.Background(), cfg, spec)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", spec, got, err, want)
		}
	}
	_, err := ServiceAliases(context.Background(), cfg, "svcmod:Missing")
	if err == nil || !strings.Contains(err.Error(), "AttributeError") || strings.Contains(err.Error(), "noise") {
		t.Errorf("missing attribute: %v", err)
	}
}
