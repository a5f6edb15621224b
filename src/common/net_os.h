/* Socket options that differ between operating systems, one small file per
 * OS behind this header (net_os_linux.c, net_os_darwin.c), chosen by the
 * build. Everything else in the project uses these instead of #ifdefs.
 *
 * All return 0 or a negative errno (the host's). */
#ifndef USBIP_NOTIFY_COMMON_NET_OS_H
#define USBIP_NOTIFY_COMMON_NET_OS_H

/* Flags for send/sendmsg that keep a write to a closed peer from raising
 * SIGPIPE (Linux: MSG_NOSIGNAL; macOS has none and relies on
 * net_os_nosigpipe at socket set-up). */
int net_os_send_flags(void);

/* macOS: SO_NOSIGPIPE on fd; elsewhere nothing to do (returns 0). */
int net_os_nosigpipe(int fd);

/* Keepalive probes after idle_s seconds of silence, every intvl_s, cnt of
 * them (Linux TCP_KEEPIDLE/INTVL/CNT; macOS TCP_KEEPALIVE for the idle
 * time, and TCP_KEEPINTVL/CNT where the SDK has them). */
int net_os_keepalive(int fd, int idle_s, int intvl_s, int cnt);

/* Data written but unacknowledged for ms milliseconds ends the connection
 * (Linux TCP_USER_TIMEOUT: keepalive does not cover a peer that vanished
 * while replies were in flight). -ENOTSUP where the OS has no such option. */
int net_os_user_timeout(int fd, int ms);

#endif
