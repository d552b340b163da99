// Command pamauth runs one PAM transaction for the identity collector's tests: it starts a
// handle for a service read from a config directory (pam_start_confdir, so nothing is
// installed under /etc/pam.d), sets the remote user and host, authenticates, and on
// success opens and closes a session. It prints the pam_authenticate result and exits 0
// when the transaction ran, whatever that result.
//
// Usage: pamauth CONFDIR SERVICE USER RUSER RHOST
//
// Building it needs cgo and Linux-PAM's headers (Debian: libpam0g-dev).
package main

/*
#cgo LDFLAGS: -lpam
#include <stdlib.h>
#include <security/pam_appl.h>

// noConversation answers no prompt: the test services never ask.
static int noConversation(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
	return PAM_CONV_ERR;
}

static int authenticate(const char *confdir, const char *service, const char *user,
			const char *ruser, const char *rhost, int *authRC) {
	struct pam_conv conv = { noConversation, NULL };
	pam_handle_t *pamh = NULL;
	int rc = pam_start_confdir(service, user, &conv, confdir, &pamh);
	if (rc != PAM_SUCCESS)
		return rc;
	if ((rc = pam_set_item(pamh, PAM_RUSER, ruser)) != PAM_SUCCESS ||
	    (rc = pam_set_item(pamh, PAM_RHOST, rhost)) != PAM_SUCCESS) {
		pam_end(pamh, rc);
		return rc;
	}
	*authRC = pam_authenticate(pamh, 0);
	if (*authRC == PAM_SUCCESS && (rc = pam_open_session(pamh, 0)) == PAM_SUCCESS)
		rc = pam_close_session(pamh, 0);
	pam_end(pamh, rc);
	return rc;
}
*/
import "C"

import (
	"fmt"
	"os"
	"unsafe"
)

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: pamauth CONFDIR SERVICE USER RUSER RHOST")
		os.Exit(2)
	}
	var args []*C.char
	for _, a := range os.Args[1:] {
		cs := C.CString(a)
		defer C.free(unsafe.Pointer(cs))
		args = append(args, cs)
	}
	var authRC C.int
	rc := C.authenticate(args[0], args[1], args[2], args[3], args[4], &authRC)
	if rc != C.PAM_SUCCESS && authRC == C.PAM_SUCCESS {
		fmt.Fprintf(os.Stderr, "pamauth: PAM transaction failed: %d\n", int(rc))
		os.Exit(1)
	}
	fmt.Println(int(authRC))
}
