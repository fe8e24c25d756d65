/* daemon/healthcheck.h — `cosyvoiced --healthcheck`: probe a running daemon's GET /readyz. */
#ifndef CV_DAEMON_HEALTHCHECK_H
#define CV_DAEMON_HEALTHCHECK_H

#include <stddef.h>

/* GET /readyz on listen:port (a wildcard listen address probes loopback) with a
 * 3 s timeout. Returns the HTTP status (200 = ready), or -1 when no answer came;
 * msg gets a one-line account. */
int healthcheck_probe(const char *listen, int port, char *msg, size_t len);

/* In a container whose PID 1 is this same program: PID 1's argument vector
 * (NUL-separated /proc/1/cmdline, at most 64 arguments), so the probe reads the
 * daemon's own flags. Returns the argc (0 = not applicable); free with
 * healthcheck_free_args. */
int healthcheck_pid1_args(char ***argv);
void healthcheck_free_args(char **argv, int argc);

#endif
