package collectors

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ErrSpoolFull is returned by Spool.Append when the record does not fit under the spool's
// byte limit, or when the disk under it is full; the caller counts the record as dropped.
var ErrSpoolFull = errors.New("spool full")

const (
	// frameHeader is a record's length (uint32) and CRC-32C of its body (uint32).
	frameHeader = 8
	// maxFrameBody bounds one record, so a corrupt length cannot make a reader allocate GiBs.
	maxFrameBody  = 16 << 20
	segmentSuffix = ".seg"
	cursorFile    = "cursor"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SpoolRecord is what a spool keeps of a Kafka record.
type SpoolRecord struct {
	Topic string
	Key   []byte
	Value []byte
	// End is the position after the record, set by Peek: Commit(End) commits up to it.
	End SpoolPos
}

// SpoolPos is a position in a spool: a segment and a byte offset in it.
type SpoolPos struct {
	Segment uint64
	Offset  int64
}

// Spool is a bounded, append-only, on-disk FIFO of records, in numbered segment files of a
// directory. One writer appends; one reader peeks a batch from its cursor and commits it once
// the batch is delivered, which deletes finished segments and persists the cursor, so a
// restart resends from the first record not committed (at least once). A torn record at
// the end of the last segment (a crash mid-append) is cut off when the spool is opened.
// Append writes each record through to its file, so that a disk that fills up is seen at
// the record that does not fit (refused with ErrSpoolFull, and cut off the file again), never
// later, and the records before it stay readable. Methods are safe for concurrent use.
type Spool struct {
	dir         string
	maxBytes    int64
	segmentSize int64

	mu     sync.Mutex
	segs   []uint64 // segment ids on disk, ascending; the last one is written
	sizes  map[uint64]int64
	w      *os.File
	frame  []byte   // Append's buffer
	cursor SpoolPos // first record not committed
	r      *os.File // open on cursor.Segment
	rseg   uint64
	bytes  int64 // bytes on disk from the cursor on
}

// OpenSpool opens (creating it if needed) the spool in dir, holding at most maxBytes of
// records not yet committed.
func OpenSpool(dir string, maxBytes int64) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool dir %s: %w", dir, err)
	}
	seg := min(max(maxBytes/16, 1<<20), 64<<20)
	s := &Spool{dir: dir, maxBytes: maxBytes, segmentSize: seg, sizes: map[uint64]int64{}}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	return s, nil
}

func (s *Spool) segPath(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", id, segmentSuffix))
}

// load reads the segments and cursor on disk and opens the last segment for appending.
func (s *Spool) load() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		s.segs = append(s.segs, id)
	}
	slices.Sort(s.segs)
	s.cursor = s.readCursor()
	// Segments wholly before the cursor were committed; a crash kept them.
	for len(s.segs) > 0 && s.segs[0] < s.cursor.Segment {
		if err := os.Remove(s.segPath(s.segs[0])); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove committed segment: %w", err)
		}
		s.segs = s.segs[1:]
	}
	if len(s.segs) == 0 {
		s.segs = []uint64{max(s.cursor.Segment, 1)}
		s.cursor = SpoolPos{Segment: s.segs[0]}
	} else if s.cursor.Segment < s.segs[0] {
		s.cursor = SpoolPos{Segment: s.segs[0]}
	}
	for i, id := range s.segs {
		size, err := s.validSize(id, i == len(s.segs)-1)
		if err != nil {
			return err
		}
		s.sizes[id] = size
		s.bytes += size
	}
	s.bytes -= min(s.cursor.Offset, s.sizes[s.cursor.Segment])
	last := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(s.segPath(last), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open segment for append: %w", err)
	}
	s.w = f
	// The cursor file exists from the start, so that a spool whose disk fills up can still
	// persist its cursor (writeCursor rewrites it in place then). A disk already full is
	// not an error here: the cursor is written again at the first commit.
	if _, err := os.Stat(filepath.Join(s.dir, cursorFile)); errors.Is(err, os.ErrNotExist) {
		_ = s.writeCursor()
	}
	return nil
}

// validSize returns the size of a segment; for the last one it is the end of its last whole
// record, and the file is truncated there.
func (s *Spool) validSize(id uint64, last bool) (int64, error) {
	path := s.segPath(id)
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stat segment: %w", err)
	}
	if !last {
		return st.Size(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var good int64
	for {
		n, err := skipFrame(br)
		if err != nil {
			break
		}
		good += n
	}
	if good < st.Size() {
		if err := os.Truncate(path, good); err != nil {
			return 0, fmt.Errorf("cut torn record off segment: %w", err)
		}
	}
	return good, nil
}

func skipFrame(br *bufio.Reader) (int64, error) {
	_, n, err := readFrame(br, nil)
	return n, err
}

func (s *Spool) readCursor() SpoolPos {
	b, err := os.ReadFile(filepath.Join(s.dir, cursorFile))
	if err != nil || len(b) != 16 {
		return SpoolPos{}
	}
	return SpoolPos{Segment: binary.BigEndian.Uint64(b), Offset: int64(binary.BigEndian.Uint64(b[8:]))}
}

func (s *Spool) writeCursor() error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], s.cursor.Segment)
	binary.BigEndian.PutUint64(b[8:], uint64(s.cursor.Offset))
	tmp := filepath.Join(s.dir, cursorFile+".tmp")
	if err := os.WriteFile(tmp, b[:], 0o600); err != nil {
		_ = os.Remove(tmp)
		if errors.Is(diskFull(err), ErrSpoolFull) {
			// A full disk has no block for a new file, but the cursor's own block is there:
			// rewriting its 16 bytes in place keeps a draining spool moving.
			if f, oerr := os.OpenFile(filepath.Join(s.dir, cursorFile), os.O_WRONLY, 0); oerr == nil {
				_, werr := f.WriteAt(b[:], 0)
				if cerr := f.Close(); werr == nil {
					werr = cerr
				}
				if werr == nil {
					return nil
				}
			}
		}
		return fmt.Errorf("write spool cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, cursorFile)); err != nil {
		return fmt.Errorf("write spool cursor: %w", err)
	}
	return nil
}

// frameSize is the bytes a record takes on disk.
func frameSize(r SpoolRecord) int64 {
	return int64(frameHeader + 4 + len(r.Topic) + len(r.Key) + len(r.Value))
}

// Append adds a record at the end of the spool, or returns ErrSpoolFull.
func (s *Spool) Append(r SpoolRecord) error { return s.appendWithin(r, s.maxBytes) }

// appendWithin appends r if the spool stays within limit bytes.
func (s *Spool) appendWithin(r SpoolRecord, limit int64) error {
	n := frameSize(r)
	if n-frameHeader > maxFrameBody {
		return fmt.Errorf("spool record of %d bytes: %w", n, ErrSpoolFull)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return errors.New("spool closed")
	}
	if s.bytes+n > limit {
		return ErrSpoolFull
	}
	last := s.segs[len(s.segs)-1]
	if s.sizes[last] > 0 && s.sizes[last]+n > s.segmentSize {
		if err := s.rotate(); err != nil {
			return err
		}
		last = s.segs[len(s.segs)-1]
	}
	s.frame = appendFrame(s.frame[:0], r)
	if _, err := s.w.Write(s.frame); err != nil {
		// Cut off what part of the record reached the file, so the segment ends with a whole
		// record and the ones before stay readable.
		if terr := s.w.Truncate(s.sizes[last]); terr != nil {
			err = errors.Join(err, fmt.Errorf("cut the partial record off: %w", terr))
		}
		return fmt.Errorf("append to spool: %w", diskFull(err))
	}
	s.sizes[last] += n
	s.bytes += n
	return nil
}

// appendFrame appends r's frame (header, then body) to b.
func appendFrame(b []byte, r SpoolRecord) []byte {
	body := 4 + len(r.Topic) + len(r.Key) + len(r.Value)
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(body))
	b = binary.BigEndian.AppendUint32(b, 0) // CRC, below
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Topic)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Key)))
	b = append(b, r.Topic...)
	b = append(b, r.Key...)
	b = append(b, r.Value...)
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+frameHeader:], castagnoli))
	return b
}

// diskFull wraps err with ErrSpoolFull when it says the disk (or the user's quota) is full.
func diskFull(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("%w: disk full: %w", ErrSpoolFull, err)
	}
	return err
}

// readFrame reads one record; it returns io.EOF at a clean end and io.ErrUnexpectedEOF or
// a checksum error for a torn or corrupt one. n is the frame's size on disk.
func readFrame(br *bufio.Reader, buf []byte) (rec SpoolRecord, n int64, err error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return rec, 0, err
	}
	body := binary.BigEndian.Uint32(hdr[0:])
	if body < 4 || body > maxFrameBody {
		return rec, 0, fmt.Errorf("spool record length %d: %w", body, errCorrupt)
	}
	b := slices.Grow(buf[:0], int(body))[:body]
	if _, err := io.ReadFull(br, b); err != nil {
		return rec, 0, io.ErrUnexpectedEOF
	}
	if crc32.Checksum(b, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
		return rec, 0, fmt.Errorf("spool record checksum: %w", errCorrupt)
	}
	tl, kl := int(binary.BigEndian.Uint16(b[0:])), int(binary.BigEndian.Uint16(b[2:]))
	if 4+tl+kl > len(b) {
		return rec, 0, fmt.Errorf("spool record fields: %w", errCorrupt)
	}
	rec = SpoolRecord{Topic: string(b[4 : 4+tl]), Key: b[4+tl : 4+tl+kl], Value: b[4+tl+kl:]}
	return rec, int64(frameHeader) + int64(body), nil
}

var errCorrupt = errors.New("corrupt spool segment")

// rotate starts a new segment; s.mu is held. When the new one cannot be created (a full
// disk), the current one stays open and the spool goes on once there is room.
func (s *Spool) rotate() error {
	id := s.segs[len(s.segs)-1] + 1
	f, err := os.OpenFile(s.segPath(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", diskFull(err))
	}
	if err := s.w.Close(); err != nil {
		f.Close()
		return fmt.Errorf("close spool segment: %w", err)
	}
	s.w = f
	s.segs = append(s.segs, id)
	s.sizes[id] = 0
	return nil
}

// Peek reads up to max records from the cursor on without moving it, and returns the
// position after the last one, for Commit. It returns no records when the spool is empty.
// The records' bytes are owned by the caller.
func (s *Spool) Peek(maxRecords int) ([]SpoolRecord, SpoolPos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return nil, s.cursor, errors.New("spool closed")
	}
	pos := s.cursor
	var out []SpoolRecord
	for len(out) < maxRecords {
		if pos.Offset >= s.sizes[pos.Segment] {
			i, _ := slices.BinarySearch(s.segs, pos.Segment)
			if i+1 >= len(s.segs) {
				break
			}
			pos = SpoolPos{Segment: s.segs[i+1]}
			continue
		}
		recs, next, err := s.readAt(pos, maxRecords-len(out))
		if err != nil {
			return nil, s.cursor, err
		}
		out = append(out, recs...)
		pos = next
	}
	return out, pos, nil
}

// readAt reads up to n records of one segment from pos; s.mu is held.
func (s *Spool) readAt(pos SpoolPos, n int) ([]SpoolRecord, SpoolPos, error) {
	if s.r == nil || s.rseg != pos.Segment {
		if s.r != nil {
			s.r.Close()
			s.r = nil
		}
		f, err := os.Open(s.segPath(pos.Segment))
		if err != nil {
			return nil, pos, fmt.Errorf("open spool segment: %w", err)
		}
		s.r, s.rseg = f, pos.Segment
	}
	br := bufio.NewReaderSize(io.NewSectionReader(s.r, pos.Offset, s.sizes[pos.Segment]-pos.Offset), 64<<10)
	var out []SpoolRecord
	for len(out) < n && pos.Offset < s.sizes[pos.Segment] {
		rec, size, err := readFrame(br, nil)
		if err != nil {
			return nil, pos, fmt.Errorf("read spool segment %d at %d: %w", pos.Segment, pos.Offset, err)
		}
		pos.Offset += size
		rec.End = pos
		out = append(out, rec)
	}
	return out, pos, nil
}

// Commit moves the cursor to pos (returned by Peek, after its records were delivered),
// deletes the segments before it and persists it.
func (s *Spool) Commit(pos SpoolPos) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.cursor.Segment < pos.Segment {
		s.bytes -= s.sizes[s.cursor.Segment] - s.cursor.Offset
		if err := s.dropSegment(s.cursor.Segment); err != nil {
			return err
		}
		s.cursor = SpoolPos{Segment: s.segs[0]}
	}
	s.bytes -= pos.Offset - s.cursor.Offset
	s.cursor = pos
	if s.bytes == 0 {
		return s.reset()
	}
	return s.writeCursor()
}

// dropSegment deletes the first segment, never the one written; s.mu is held.
func (s *Spool) dropSegment(id uint64) error {
	if s.r != nil && s.rseg == id {
		s.r.Close()
		s.r = nil
	}
	if err := os.Remove(s.segPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove delivered spool segment: %w", err)
	}
	delete(s.sizes, id)
	s.segs = s.segs[1:]
	return nil
}

// reset empties the spool once everything was committed: the written segment is cut to
// zero so an idle spool takes no disk; s.mu is held.
func (s *Spool) reset() error {
	for len(s.segs) > 1 {
		if err := s.dropSegment(s.segs[0]); err != nil {
			return err
		}
	}
	if err := s.w.Truncate(0); err != nil {
		return fmt.Errorf("empty spool segment: %w", err)
	}
	s.sizes[s.segs[0]] = 0
	s.cursor = SpoolPos{Segment: s.segs[0]}
	return s.writeCursor()
}

// Bytes returns the bytes of records not yet committed.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Empty reports whether every appended record was committed.
func (s *Spool) Empty() bool { return s.Bytes() == 0 }

// Close closes the spool's files; the records stay for the next open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeFiles()
	return nil
}

func (s *Spool) closeFiles() {
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
}
