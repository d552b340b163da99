package kafka

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Credentials are a role's SASL/SCRAM user on the embedded broker.
//
// `crumbs up` generates them when it first starts the embedded broker, one file per role in
// the credentials directory (kafka.embedded.credentials_dir), readable by the user that runs it
// (root) only. A command run as root finds its role's file there; a process that must not read
// root's files (a stage running unprivileged) is handed its role's credentials by its parent
// as kafka.security.sasl.* (Env), and never needs the directory.
type Credentials struct {
	Role      Role
	Mechanism string // SCRAM-SHA-512
	Username  string // crumbs-<role>
	Password  string // 32 random bytes, base64
}

// credentialsMechanism is the SCRAM mechanism of the embedded broker's users.
const credentialsMechanism = MechanismScramSHA512

// maxCredentialsFile bounds what ReadCredentials reads.
const maxCredentialsFile = 4 << 10

// SASL returns the client configuration that authenticates as c.
func (c Credentials) SASL() SASLConfig {
	return SASLConfig{Mechanism: c.Mechanism, Username: c.Username, Password: c.Password}
}

// Env returns c as the environment variables of kafka.security.sasl.*, for a parent that hands
// a child process its role without the child reading the credentials directory.
func (c Credentials) Env() []string {
	return []string{
		"CRUMBS_KAFKA_SECURITY_SASL_MECHANISM=" + c.Mechanism,
		"CRUMBS_KAFKA_SECURITY_SASL_USERNAME=" + c.Username,
		"CRUMBS_KAFKA_SECURITY_SASL_PASSWORD=" + c.Password,
	}
}

// CredentialsFile is the file of a role's credentials in dir.
func CredentialsFile(dir string, r Role) string { return filepath.Join(dir, string(r)+".credentials") }

// NewCredentials generates credentials for every role, with passwords from crypto/rand.
func NewCredentials() (map[Role]Credentials, error) {
	out := map[Role]Credentials{}
	for _, r := range Roles() {
		c, err := newCredentials(r)
		if err != nil {
			return nil, err
		}
		out[r] = c
	}
	return out, nil
}

func newCredentials(r Role) (Credentials, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Credentials{}, fmt.Errorf("generate the password of role %s: %w", r, err)
	}
	return Credentials{Role: r, Mechanism: credentialsMechanism, Username: r.Username(), Password: base64.RawURLEncoding.EncodeToString(b)}, nil
}

// EnsureCredentials returns every role's credentials from dir, generating the missing ones.
// dir is created mode 0700 and each file mode 0600, owned by the running user; a directory or
// file that others may read, that another user owns, or that is a symbolic link is refused,
// since its passwords may have been read or swapped.
func EnsureCredentials(dir string) (map[Role]Credentials, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kafka.embedded.credentials_dir: create %s: %w", dir, err)
	}
	if err := checkPrivate(dir); err != nil {
		return nil, err
	}
	out := map[Role]Credentials{}
	for _, r := range Roles() {
		c, err := ReadCredentials(dir, r)
		if errors.Is(err, fs.ErrNotExist) {
			c, err = writeCredentials(dir, r)
		}
		if err != nil {
			return nil, err
		}
		out[r] = c
	}
	return out, nil
}

// writeCredentials creates a role's file unless another process just did (then it reads that).
func writeCredentials(dir string, r Role) (Credentials, error) {
	c, err := newCredentials(r)
	if err != nil {
		return Credentials{}, err
	}
	tmp, err := os.CreateTemp(dir, "."+string(r)+".*.tmp") // mode 0600
	if err != nil {
		return Credentials{}, fmt.Errorf("write the credentials of role %s: %w", r, err)
	}
	defer os.Remove(tmp.Name())
	fmt.Fprintf(tmp, "# crumbs: SASL credentials of the role %q on the embedded broker; keep secret.\nmechanism=%s\nusername=%s\npassword=%s\n",
		r, c.Mechanism, c.Username, c.Password)
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return Credentials{}, fmt.Errorf("write the credentials of role %s: %w", r, err)
	}
	// A hard link creates the name only if it is free: two starts at once keep one password.
	if err := os.Link(tmp.Name(), CredentialsFile(dir, r)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ReadCredentials(dir, r)
		}
		return Credentials{}, fmt.Errorf("write the credentials of role %s: %w", r, err)
	}
	return c, nil
}

// ReadCredentials reads a role's credentials from dir, for a command that acts as that role.
// The error says why it cannot: the directory is root's, there are no credentials yet, or
// the files are open to others.
func ReadCredentials(dir string, r Role) (Credentials, error) {
	if err := checkPrivate(dir); err != nil {
		return Credentials{}, err
	}
	path := CredentialsFile(dir, r)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Credentials{}, fmt.Errorf("no credentials of role %s in %s (crumbs up writes them when it first starts the embedded broker): %w", r, dir, fs.ErrNotExist)
	case errors.Is(err, fs.ErrPermission):
		return Credentials{}, notRoot(dir)
	case errors.Is(err, syscall.ELOOP):
		return Credentials{}, fmt.Errorf("%s: a symbolic link; refusing it as credentials", path)
	case err != nil:
		return Credentials{}, fmt.Errorf("read the credentials of role %s: %w", r, err)
	}
	defer f.Close()
	if err := checkPrivateFile(f, path); err != nil {
		return Credentials{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialsFile+1))
	if err != nil {
		return Credentials{}, fmt.Errorf("read the credentials of role %s: %w", r, err)
	}
	if len(b) > maxCredentialsFile {
		return Credentials{}, fmt.Errorf("%s: larger than %d bytes: not a credentials file", path, maxCredentialsFile)
	}
	c, err := parseCredentials(b)
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %w (remove it: crumbs up writes a new one)", path, err)
	}
	if c.Username != r.Username() {
		return Credentials{}, fmt.Errorf("%s: username %q, want %q", path, c.Username, r.Username())
	}
	c.Role = r
	return c, nil
}

// parseCredentials reads key=value lines; # starts a comment.
func parseCredentials(b []byte) (Credentials, error) {
	var c Credentials
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return c, fmt.Errorf("line %d: not key=value", n)
		}
		switch strings.TrimSpace(k) {
		case "mechanism":
			c.Mechanism = strings.TrimSpace(v)
		case "username":
			c.Username = strings.TrimSpace(v)
		case "password":
			c.Password = strings.TrimSpace(v)
		default:
			return c, fmt.Errorf("line %d: unknown key %q", n, k)
		}
	}
	switch {
	case c.Mechanism != MechanismScramSHA256 && c.Mechanism != MechanismScramSHA512:
		return c, fmt.Errorf("mechanism %q: must be %s or %s", c.Mechanism, MechanismScramSHA256, MechanismScramSHA512)
	case c.Username == "":
		return c, errors.New("no username")
	case len(c.Password) < 16:
		return c, errors.New("no password, or one shorter than 16 characters")
	}
	return c, nil
}

func notRoot(dir string) error {
	return fmt.Errorf("credentials in %s are readable by root only; run as root or set kafka.security.sasl.* (mechanism, username, password)", dir)
}

// checkPrivate refuses a credentials directory that is not a directory of the running user's
// alone (mode 0700 or stricter, no symbolic link).
func checkPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no credentials in %s (crumbs up writes them when it first starts the embedded broker): %w", dir, fs.ErrNotExist)
	case errors.Is(err, fs.ErrPermission):
		return notRoot(dir)
	case err != nil:
		return fmt.Errorf("credentials directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("credentials directory %s: not a directory (%s)", dir, fi.Mode().Type())
	}
	return checkOwner(dir, fi, dir)
}

func checkPrivateFile(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s); refusing it as credentials", path, fi.Mode().Type())
	}
	return checkOwner(path, fi, filepath.Dir(path))
}

// checkOwner refuses what the running user does not own, or what others may read or write.
func checkOwner(path string, fi fs.FileInfo, dir string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot tell its owner", path)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		if euid != 0 {
			return notRoot(dir)
		}
		return fmt.Errorf("%s: owned by uid %d, not by root: another user may have read or replaced its passwords; remove it (crumbs up writes new ones)", path, st.Uid)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: mode %04o lets other users read or change it: its passwords may have leaked; remove it (crumbs up writes new ones), or chmod go= it", path, perm)
	}
	return nil
}
