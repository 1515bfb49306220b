package pyhost

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/pybridge/pybridge/python"
)

// The embedded package is written out once per content hash, to
// os.UserCacheDir()/pybridge/<hash>/pybridge, and shared by every worker and every
// process of the same build. It is written into a temporary directory beside it and
// renamed into place, so a concurrent starter sees either nothing or the whole package.
// When the cache directory is not writable, a temporary directory is used instead (and
// left behind: another process of this build may be using it).
var embedded struct {
	once sync.Once
	dir  string
	err  error
}

func embeddedPackageDir() (string, error) {
	embedded.once.Do(func() {
		embedded.dir, embedded.err = writePackage(python.Package)
	})
	return embedded.dir, embedded.err
}

func writePackage(pkg fs.FS) (string, error) {
	var files []string
	err := fs.WalkDir(pkg, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", errors.New("pyhost: the embedded pybridge package is empty")
	}
	sort.Strings(files)
	h := sha256.New()
	contents := make([][]byte, len(files))
	for i, p := range files {
		if contents[i], err = fs.ReadFile(pkg, p); err != nil {
			return "", err
		}
		h.Write([]byte(p))
		h.Write([]byte{0})
		h.Write(contents[i])
		h.Write([]byte{0})
	}
	key := hex.EncodeToString(h.Sum(nil))[:20]

	write := func(root string) error {
		for i, p := range files {
			dst := filepath.Join(root, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(dst, contents[i], 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	if cache, err := os.UserCacheDir(); err == nil {
		parent := filepath.Join(cache, "pybridge")
		dir := filepath.Join(parent, key)
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir, nil
		}
		if err := os.MkdirAll(parent, 0o755); err == nil {
			if tmp, err := os.MkdirTemp(parent, ".tmp-"+key+"-"); err == nil {
				if err := write(tmp); err == nil {
					if err := os.Rename(tmp, dir); err == nil {
						return dir, nil
					}
				}
				os.RemoveAll(tmp)
				if st, err := os.Stat(dir); err == nil && st.IsDir() {
					return dir, nil // another process won the race
				}
			}
		}
	}
	tmp, err := os.MkdirTemp("", "pybridge-"+key+"-")
	if err != nil {
		return "", err
	}
	if err := write(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

// Pdeathsig fires when the thread that forked the child exits, not the process. Go
// may retire threads, so every worker is forked from one goroutine locked to its
// thread for the life of the process: the workers die with the Go process, never
// earlier.
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func startProcess(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every child
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd, done}
	return <-done
}
