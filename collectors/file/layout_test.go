package file

import (
	"testing"

	"github.com/threatcrumbs/crumbs/collectors/internal/collectortest"
)

// TestRecordLayouts checks that the records the ring buffer carries decode without
// reflection exactly as encoding/binary decodes them.
func TestRecordLayouts(t *testing.T) {
	collectortest.CheckLayout[fileFileEvent](t)
}
