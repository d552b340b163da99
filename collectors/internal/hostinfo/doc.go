// Package hostinfo reads what the collectors' kernel records do not carry: user and group
// names from passwd(5) and group(5) files, and a process's executable, working directory,
// argv and cgroup from /proc/<pid>.
//
// In: the files below a configured /proc root and the configured passwd or group file.
// Out: plain strings and small structs; a read that fails (the process is gone, the file is
// missing) gives empty values, never an error, since the kernel record stands on its own.
package hostinfo
