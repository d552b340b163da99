package sigma

import "testing/fstest"

// fstestMap is an in-memory folder of files (name → content).
func fstestMap(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, body := range files {
		m[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return m
}
