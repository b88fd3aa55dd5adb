//go:build ignore

#ifndef SQLWARDEN_REDIRECT_H
#define SQLWARDEN_REDIRECT_H

/* Shared with redirect/ (bpf2go generates the Go mirror of these structs). */

#define MAX_PORTS 16
#define MAX_LEVELS 32
#define MAX_ENROLLMENTS 4096
#define MAX_TUPLES 65536

#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif
#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif

enum config_flags {
	CONFIG_ENABLED = 1 << 0,
	CONFIG_FAIL_OPEN = 1 << 1,
	CONFIG_HAVE_NODE_IP6 = 1 << 2,
};

/* IPv4 addresses and ip6 words are network byte order, ports host order. */
struct config {
	__u32 flags;
	__u32 proxy_ip4;
	__u32 proxy_ip6[4];
	__u32 node_ip4; /* 0: no node address */
	__u32 node_ip6[4];
	__u16 proxy_port;
	__u16 _pad0;
	__u32 mark; /* sockets with this SO_MARK are never redirected */
	__u32 _pad1;
	__u64 host_netns_cookie;
	__u64 daemon_cgroup_id;
	__u64 heartbeat_ns; /* CLOCK_MONOTONIC, fail-open only */
	__u64 heartbeat_timeout_ns;
};

enum enroll_flags {
	ENROLL_ALL_PORTS = 1 << 0,
};

struct enrollment {
	__u16 ports[MAX_PORTS]; /* host order, 0 terminates */
	__u32 flags;
};

struct origin {
	__u8 dst_ip[16]; /* original destination, IPv4-mapped for IPv4 */
	__u16 dst_port;
	__u8 family; /* 4 or 6: the original destination's family */
	__u8 _pad0;
	__u32 pid; /* tgid, host pid namespace */
	__u32 uid;
	__u32 _pad1;
	__u64 cgroup_id;
	__u64 netns_cookie;
	__u64 sock_cookie;
	__u64 start_boottime_ns; /* the process's start (task->group_leader->start_boottime) */
};

/* The redirected connection as the proxy sees it: src = client, dst = proxy. */
struct tuple {
	__u8 src_ip[16];
	__u8 dst_ip[16];
	__u16 src_port;
	__u16 dst_port;
};

struct sock_state {
	struct origin origin;
	struct tuple tuple;
	__u32 has_tuple;
};

enum counter {
	COUNTER_REDIRECTED,
	COUNTER_SKIPPED_EXCLUDED,
	COUNTER_SKIPPED_PORT,
	COUNTER_SKIPPED_PROXY_DEST,
	COUNTER_SKIPPED_FAIL_OPEN,
	COUNTER_DENIED,
	COUNTER_STORAGE_ERRORS,
	COUNTER_TUPLE_ERRORS,
	COUNTER_PUBLISHED,
	COUNTER_RELEASED,
	COUNTER_MAX,
};

#endif
