package outputs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
)

// JSONLine is one line of a file output.
type JSONLine struct {
	Output   string            `json:"output"`
	Alert    AlertJSON         `json:"alert"`
	Incident *IncidentJSON     `json:"incident,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// fileOutput appends one JSON line per alert to standard output or to a file it rotates by
// size: path is renamed path.1 (path.1 becomes path.2, ...) and the oldest past MaxFiles is
// removed. The file is created 0600 and never opened through a symbolic link. An alert is
// delivered when its line is written (and synced, with fsync).
type fileOutput struct {
	o    OutputConfig
	w    io.Writer // standard output, when path is -
	f    *os.File
	size int64
}

func newFileOutput(key string, o OutputConfig, stdout io.Writer) (*fileOutput, error) {
	fo := &fileOutput{o: o}
	if o.Path == "-" {
		fo.w = stdout
		if fo.w == nil {
			fo.w = os.Stdout
		}
		return fo, nil
	}
	if err := fo.open(); err != nil {
		return nil, fmt.Errorf("%s.path: %w", key, err)
	}
	return fo, nil
}

func (fo *fileOutput) open() error {
	f, err := os.OpenFile(fo.o.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", fo.o.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat %s: %w", fo.o.Path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("%s: not a regular file", fo.o.Path)
	}
	fo.f, fo.size = f, st.Size()
	return nil
}

func (fo *fileOutput) Send(_ context.Context, m *message) error {
	line, err := json.Marshal(JSONLine{Output: fo.o.Name, Alert: alertJSON(m.Alert, m.Data.URL), Incident: incidentJSON(m.Incident), Fields: m.Fields})
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	line = append(line, '\n')
	if fo.w != nil {
		if _, err := fo.w.Write(line); err != nil {
			return fmt.Errorf("write to standard output: %w", err)
		}
		return nil
	}
	if fo.f == nil {
		if err := fo.open(); err != nil {
			return err
		}
	}
	if fo.size > 0 && fo.size+int64(len(line)) > fo.o.MaxSize {
		if err := fo.rotate(); err != nil {
			return err
		}
	}
	n, err := fo.f.Write(line)
	fo.size += int64(n)
	if err != nil {
		return fmt.Errorf("write %s: %w", fo.o.Path, err)
	}
	if fo.o.Fsync {
		if err := fo.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", fo.o.Path, err)
		}
	}
	return nil
}

// rotate shifts path.N-1 to path.N ... path to path.1, drops what falls past MaxFiles, and
// opens a new path.
func (fo *fileOutput) rotate() error {
	if err := fo.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", fo.o.Path, err)
	}
	fo.f = nil
	name := func(i int) string { return fo.o.Path + "." + strconv.Itoa(i) }
	if err := os.Remove(name(fo.o.MaxFiles)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate %s: %w", fo.o.Path, err)
	}
	for i := fo.o.MaxFiles - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", fo.o.Path, err)
		}
	}
	if err := os.Rename(fo.o.Path, name(1)); err != nil {
		return fmt.Errorf("rotate %s: %w", fo.o.Path, err)
	}
	return fo.open()
}

func (fo *fileOutput) Close() error {
	if fo.f == nil {
		return nil
	}
	err := fo.f.Close()
	fo.f = nil
	return err
}
