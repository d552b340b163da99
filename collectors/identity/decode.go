package identity

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
	"github.com/threatcrumbs/crumbs/schemas"
)

const (
	// threadRepeatWindow is how long a process's credential change is remembered: glibc
	// and Go apply setuid to every thread, so one call is one record per thread.
	threadRepeatWindow = time.Second
	// threadRepeatEntries caps the processes remembered; when full, repeats are reported.
	threadRepeatEntries = 4096
	// pamSuccess is PAM_SUCCESS.
	pamSuccess = 0
)

func (c *Collector) decode(raw []byte, now time.Time) (*schemas.IdentityEvent, error) {
	if len(raw) < 4 {
		return nil, fmt.Errorf("record of %d bytes has no kind", len(raw))
	}
	switch kind := identityRecordKind(binary.LittleEndian.Uint32(raw)); kind {
	case identityRecordKindRECORD_PAM:
		return c.decodePAM(raw, now)
	case identityRecordKindRECORD_CREDS:
		return c.decodeCreds(raw, now)
	case identityRecordKindRECORD_SETUID_EXEC:
		return c.decodeSetuidExec(raw, now)
	default:
		return nil, fmt.Errorf("record of unknown kind %d", kind)
	}
}

var pamActions = map[identityPamOp]string{
	identityPamOpPAM_OP_AUTHENTICATE:  schemas.ActionAuth,
	identityPamOpPAM_OP_ACCT_MGMT:     ActionAccount,
	identityPamOpPAM_OP_OPEN_SESSION:  schemas.ActionSessionOpen,
	identityPamOpPAM_OP_CLOSE_SESSION: schemas.ActionSessionClose,
}

func (c *Collector) decodePAM(raw []byte, now time.Time) (*schemas.IdentityEvent, error) {
	var rec identityPamEvent
	if _, err := kernel.Decode(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode pam record: %w", err)
	}
	action, ok := pamActions[identityPamOp(rec.Op)]
	if !ok {
		return nil, fmt.Errorf("pam record of unknown call %d", rec.Op)
	}
	ev := c.newEvent(rec.KtimeNs, action)
	ev.Process = c.actor(rec.Pid, rec.Uid, kernel.CString(rec.Comm[:]), rec.CgroupId, now)
	if rec.Known == 0 {
		c.unknownHandles.Add(1)
	}
	ev.Identity = pamIdentity(pamItems{
		Service: kernel.CString(rec.Items.Service[:]),
		User:    kernel.CString(rec.Items.User[:]),
		RUser:   kernel.CString(rec.Items.Ruser[:]),
		RHost:   kernel.CString(rec.Items.Rhost[:]),
	}, rec.Rc, ev.Process.User.Name)
	return ev, nil
}

// pamItems are the PAM items of a handle as decoded.
type pamItems struct {
	Service, User, RUser, RHost string
}

// pamIdentity maps PAM items to the event's identity. PAM_USER is the account being
// authenticated or logged into (target_user). The user who acts is PAM_RUSER when the
// application set it (su, sudo: the caller), else PAM_USER itself (sshd, login: the one
// logging in), else the name of the process's uid (a handle opened before the probes).
func pamIdentity(items pamItems, rc int32, processUser string) schemas.Identity {
	id := schemas.Identity{
		Service:    items.Service,
		User:       items.User,
		TargetUser: items.User,
		RemoteHost: items.RHost,
		Result:     schemas.ResultSuccess,
		Code:       rc,
		OldUID:     -1, NewUID: -1, OldGID: -1, NewGID: -1,
	}
	switch {
	case items.RUser != "":
		id.User = items.RUser
	case items.User == "":
		id.User = processUser
	}
	if rc != pamSuccess {
		id.Result = schemas.ResultFailure
	}
	return id
}

func (c *Collector) decodeCreds(raw []byte, now time.Time) (*schemas.IdentityEvent, error) {
	var rec identityCredsEvent
	if _, err := kernel.Decode(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode credentials record: %w", err)
	}
	if c.repeats.seen(rec, now) {
		c.threadRepeatsN.Add(1)
		return nil, nil
	}
	action := schemas.ActionSetGID
	if isSetUIDSyscall(rec.SyscallNr) {
		action = schemas.ActionSetUID
	}
	ev := c.newEvent(rec.KtimeNs, action)
	ev.Process = c.actor(rec.Pid, rec.Old.Uid, kernel.CString(rec.Comm[:]), rec.CgroupId, now)
	ev.Identity = credsIdentity(rec.Old, rec.New, rec.Ret)
	ev.Identity.User = c.users.Name(uint32(ev.Identity.OldUID), now)
	ev.Identity.TargetUser = c.users.Name(uint32(ev.Identity.NewUID), now)
	return ev, nil
}

// credsIdentity says what a setuid-family syscall did. Of each of uid and gid it reports
// the one that changed, looking at the effective id first (it decides privilege), then
// the real id, then the filesystem id; when none changed (a failed call), the effective
// ids. A failure carries the errno as its code.
func credsIdentity(old, new identityCredIds, ret int64) schemas.Identity {
	id := schemas.Identity{Result: schemas.ResultSuccess}
	id.OldUID, id.NewUID = changed([3]uint32{old.Euid, old.Uid, old.Fsuid}, [3]uint32{new.Euid, new.Uid, new.Fsuid})
	id.OldGID, id.NewGID = changed([3]uint32{old.Egid, old.Gid, old.Fsgid}, [3]uint32{new.Egid, new.Gid, new.Fsgid})
	if ret < 0 {
		id.Result, id.Code = schemas.ResultFailure, int32(-ret)
	}
	return id
}

func changed(old, new [3]uint32) (int64, int64) {
	for i := range old {
		if old[i] != new[i] {
			return int64(old[i]), int64(new[i])
		}
	}
	return int64(old[0]), int64(new[0])
}

func (c *Collector) decodeSetuidExec(raw []byte, now time.Time) (*schemas.IdentityEvent, error) {
	var rec identitySetuidExecEvent
	if _, err := kernel.Decode(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode setuid exec record: %w", err)
	}
	ev := c.newEvent(rec.KtimeNs, schemas.ActionSetUIDExec)
	ev.Process = c.actor(rec.Pid, rec.Creds.Uid, kernel.CString(rec.Comm[:]), rec.CgroupId, now)
	if path := kernel.CString(rec.Path[:]); filepath.IsAbs(path) {
		// The exec'd path, not /proc's answer: the process may already be gone.
		ev.Process.File = schemas.File{Path: filepath.Clean(path), Name: filepath.Base(path), SHA256: ev.Process.File.SHA256}
	}
	ev.Identity = schemas.Identity{
		User:       c.users.Name(rec.Creds.Uid, now),
		TargetUser: c.users.Name(rec.Creds.Euid, now),
		Result:     schemas.ResultSuccess,
		OldUID:     int64(rec.Creds.Uid), NewUID: int64(rec.Creds.Euid),
		OldGID: int64(rec.Creds.Gid), NewGID: int64(rec.Creds.Egid),
	}
	return ev, nil
}

// threadRepeats remembers each process's last credential change, to report it once and
// not once per thread. Used from the reading goroutine only; bounded by max entries.
type threadRepeats struct {
	window time.Duration
	max    int
	last   map[uint32]repeatEntry
}

type repeatEntry struct {
	tid      uint32
	nr       uint32
	ret      int64
	old, new identityCredIds
	at       time.Time
}

func newThreadRepeats(window time.Duration, max int) *threadRepeats {
	return &threadRepeats{window: window, max: max, last: make(map[uint32]repeatEntry)}
}

// seen reports whether another thread of rec's process made the same change within the
// window, and remembers rec otherwise. The same thread repeating a change is no repeat.
func (r *threadRepeats) seen(rec identityCredsEvent, now time.Time) bool {
	e, ok := r.last[rec.Pid]
	if ok && e.tid != rec.Tid && e.nr == rec.SyscallNr && e.ret == rec.Ret && e.old == rec.Old && e.new == rec.New && now.Sub(e.at) < r.window {
		return true
	}
	if ok || len(r.last) < r.max {
		r.last[rec.Pid] = repeatEntry{tid: rec.Tid, nr: rec.SyscallNr, ret: rec.Ret, old: rec.Old, new: rec.New, at: now}
	}
	return false
}

func (r *threadRepeats) expire(now time.Time) {
	for pid, e := range r.last {
		if now.Sub(e.at) >= r.window {
			delete(r.last, pid)
		}
	}
}
