//go:build ignore

// Transparent redirect of enrolled workloads' MySQL connections to the
// sqlwarden proxy. One object, attached once at a cgroup v2 root:
//
//   cgroup/connect4, cgroup/connect6  rewrite the destination, remember the origin
//   sockops (TCP_CONNECT_CB)          publish the origin under the 4-tuple
//   cgroup/getpeername4|6             the application sees its original peer
//   cgroup/sock_release               drop the 4-tuple entry
//
// Addresses in shared structs are 16 bytes, IPv4 as IPv4-mapped IPv6, so keys
// match Go's netip.Addr.As16(). Ports are host byte order.

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "redirect.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* Just the fields we read, relocated against the running kernel's BTF. */
struct task_struct___sw {
	struct task_struct___sw *group_leader;
	__u64 start_boottime;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} sw_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENROLLMENTS);
	__type(key, __u64); /* cgroup v2 id */
	__type(value, struct enrollment);
} sw_enrolled SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_state);
} sw_sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_TUPLES);
	__type(key, struct tuple);
	__type(value, struct origin);
} sw_tuples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sw_counters SEC(".maps");

/* One 32-bit context load: clang would otherwise merge neighbouring words into
 * a 64-bit load, which the verifier rejects for ctx fields. */
#define CTX_U32(field) (*(volatile __u32 *)&(field))

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&sw_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline int is_mapped_v4(const __u32 ip6[4])
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0xffff);
}

static __always_inline void set_mapped(__u8 dst[16], __u32 ip4)
{
	__u32 *w = (__u32 *)dst;
	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0xffff);
	w[3] = ip4;
}

static __always_inline void set_ip6(__u8 dst[16], const __u32 ip6[4])
{
	__u32 *w = (__u32 *)dst;
	w[0] = ip6[0];
	w[1] = ip6[1];
	w[2] = ip6[2];
	w[3] = ip6[3];
}

static __always_inline int port_enrolled(const struct enrollment *e, __u16 port)
{
	if (e->flags & ENROLL_ALL_PORTS)
		return 1;
#pragma unroll
	for (int i = 0; i < MAX_PORTS; i++) {
		if (e->ports[i] == 0)
			return 0;
		if (e->ports[i] == port)
			return 1;
	}
	return 0;
}

/* The deepest enrolled cgroup among the current cgroup and its ancestors. */
static __always_inline struct enrollment *find_enrollment(void)
{
	struct enrollment *found = 0;

	for (int level = 0; level < MAX_LEVELS; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (id == 0)
			break;
		struct enrollment *e = bpf_map_lookup_elem(&sw_enrolled, &id);
		if (e)
			found = e;
	}
	return found;
}

enum verdict {
	V_PASS,     /* leave the connect alone */
	V_REDIRECT, /* rewrite to the proxy */
	V_DENY,     /* refuse the connect (fail-closed without a target) */
};

/*
 * decide applies every check shared by connect4 and connect6. On V_REDIRECT it
 * fills st->origin (except the destination) and *to_node tells whether the
 * socket lives outside the host netns and must go to the node address.
 */
static __always_inline enum verdict decide(struct bpf_sock_addr *ctx, const struct config *cfg,
					   __u16 dport, struct origin *o, int *to_node)
{
	if (ctx->type != SOCK_STREAM || (ctx->protocol != 0 && ctx->protocol != IPPROTO_TCP))
		return V_PASS;
	if (!(cfg->flags & CONFIG_ENABLED))
		return V_PASS;

	__u64 cg = bpf_get_current_cgroup_id();
	if (cg == cfg->daemon_cgroup_id) {
		count(COUNTER_SKIPPED_EXCLUDED);
		return V_PASS;
	}
	struct bpf_sock *sk = ctx->sk;
	if (sk && cfg->mark != 0 && sk->mark == cfg->mark) {
		count(COUNTER_SKIPPED_EXCLUDED);
		return V_PASS;
	}

	struct enrollment *e = find_enrollment();
	if (!e)
		return V_PASS;
	if (!port_enrolled(e, dport)) {
		count(COUNTER_SKIPPED_PORT);
		return V_PASS;
	}

	if (cfg->flags & CONFIG_FAIL_OPEN) {
		__u64 now = bpf_ktime_get_ns();
		if (cfg->heartbeat_ns == 0 || now - cfg->heartbeat_ns > cfg->heartbeat_timeout_ns) {
			count(COUNTER_SKIPPED_FAIL_OPEN);
			return V_PASS;
		}
	}

	__u64 netns = bpf_get_netns_cookie(ctx);
	*to_node = netns != cfg->host_netns_cookie;

	__u64 pid_tgid = bpf_get_current_pid_tgid();
	o->pid = pid_tgid >> 32;
	o->uid = (__u32)bpf_get_current_uid_gid();
	o->cgroup_id = cg;
	o->netns_cookie = netns;
	o->dst_port = dport;
	o->sock_cookie = bpf_get_socket_cookie(ctx);
	/* The start time tells a reused pid from the process that connected. */
	struct task_struct___sw *task = (struct task_struct___sw *)bpf_get_current_task();
	struct task_struct___sw *leader = BPF_CORE_READ(task, group_leader);
	o->start_boottime_ns = BPF_CORE_READ(leader, start_boottime);
	return V_REDIRECT;
}

static __always_inline int store(struct bpf_sock_addr *ctx, const struct origin *o)
{
	struct sock_state *st;

	if (!ctx->sk)
		return -1;
	st = bpf_sk_storage_get(&sw_sockets, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(COUNTER_STORAGE_ERRORS);
		return -1;
	}
	st->origin = *o;
	st->has_tuple = 0;
	return 0;
}

SEC("cgroup/connect4")
int sw_connect4(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&sw_config, &zero);
	if (!cfg)
		return 1;

	__u16 dport = bpf_ntohs(ctx->user_port);
	__u32 dip = ctx->user_ip4;

	/* Never rewrite a destination that already is the proxy. */
	if (dport == cfg->proxy_port && (dip == cfg->proxy_ip4 || (cfg->node_ip4 && dip == cfg->node_ip4))) {
		count(COUNTER_SKIPPED_PROXY_DEST);
		return 1;
	}

	struct origin o = {};
	int to_node = 0;
	enum verdict v = decide(ctx, cfg, dport, &o, &to_node);
	if (v == V_PASS)
		return 1;

	__u32 target = cfg->proxy_ip4;
	if (to_node) {
		if (!cfg->node_ip4) {
			count(COUNTER_DENIED);
			return 0;
		}
		target = cfg->node_ip4;
	}
	set_mapped(o.dst_ip, dip);
	o.family = 4;
	if (store(ctx, &o) < 0) {
		count(COUNTER_DENIED);
		return 0;
	}
	ctx->user_ip4 = target;
	ctx->user_port = bpf_htons(cfg->proxy_port);
	count(COUNTER_REDIRECTED);
	return 1;
}

SEC("cgroup/connect6")
int sw_connect6(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&sw_config, &zero);
	if (!cfg)
		return 1;

	__u16 dport = bpf_ntohs(ctx->user_port);
	__u32 dip[4];
	dip[0] = CTX_U32(ctx->user_ip6[0]);
	dip[1] = CTX_U32(ctx->user_ip6[1]);
	dip[2] = CTX_U32(ctx->user_ip6[2]);
	dip[3] = CTX_U32(ctx->user_ip6[3]);
	int mapped = is_mapped_v4(dip);

	if (dport == cfg->proxy_port) {
		if (mapped && (dip[3] == cfg->proxy_ip4 || (cfg->node_ip4 && dip[3] == cfg->node_ip4))) {
			count(COUNTER_SKIPPED_PROXY_DEST);
			return 1;
		}
		if (!mapped && ((dip[0] == cfg->proxy_ip6[0] && dip[1] == cfg->proxy_ip6[1] &&
				 dip[2] == cfg->proxy_ip6[2] && dip[3] == cfg->proxy_ip6[3]) ||
				(cfg->flags & CONFIG_HAVE_NODE_IP6 && dip[0] == cfg->node_ip6[0] &&
				 dip[1] == cfg->node_ip6[1] && dip[2] == cfg->node_ip6[2] &&
				 dip[3] == cfg->node_ip6[3]))) {
			count(COUNTER_SKIPPED_PROXY_DEST);
			return 1;
		}
	}

	struct origin o = {};
	int to_node = 0;
	enum verdict v = decide(ctx, cfg, dport, &o, &to_node);
	if (v == V_PASS)
		return 1;

	__u32 target[4] = {0, 0, bpf_htonl(0xffff), cfg->proxy_ip4};
	if (mapped) {
		/* Dual-stack socket to an IPv4 peer: stay IPv4-mapped. */
		if (to_node) {
			if (!cfg->node_ip4) {
				count(COUNTER_DENIED);
				return 0;
			}
			target[3] = cfg->node_ip4;
		}
	} else if (to_node) {
		if (cfg->flags & CONFIG_HAVE_NODE_IP6) {
			target[0] = cfg->node_ip6[0];
			target[1] = cfg->node_ip6[1];
			target[2] = cfg->node_ip6[2];
			target[3] = cfg->node_ip6[3];
		} else if (cfg->node_ip4) {
			target[3] = cfg->node_ip4; /* IPv4-mapped; needs IPV6_V6ONLY off */
		} else {
			count(COUNTER_DENIED);
			return 0;
		}
	} else {
		target[0] = cfg->proxy_ip6[0];
		target[1] = cfg->proxy_ip6[1];
		target[2] = cfg->proxy_ip6[2];
		target[3] = cfg->proxy_ip6[3];
	}

	set_ip6(o.dst_ip, dip);
	o.family = mapped ? 4 : 6;
	if (store(ctx, &o) < 0) {
		count(COUNTER_DENIED);
		return 0;
	}
	ctx->user_ip6[0] = target[0];
	ctx->user_ip6[1] = target[1];
	ctx->user_ip6[2] = target[2];
	ctx->user_ip6[3] = target[3];
	ctx->user_port = bpf_htons(cfg->proxy_port);
	count(COUNTER_REDIRECTED);
	return 1;
}

SEC("sockops")
int sw_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return 1;
	struct sock_state *st = bpf_sk_storage_get(&sw_sockets, sk, 0, 0);
	if (!st)
		return 1;

	struct tuple key = {};
	if (skops->family == 2 /* AF_INET */) {
		set_mapped(key.src_ip, skops->local_ip4);
		set_mapped(key.dst_ip, skops->remote_ip4);
	} else {
		__u32 ip[4];
		ip[0] = CTX_U32(skops->local_ip6[0]);
		ip[1] = CTX_U32(skops->local_ip6[1]);
		ip[2] = CTX_U32(skops->local_ip6[2]);
		ip[3] = CTX_U32(skops->local_ip6[3]);
		set_ip6(key.src_ip, ip);
		ip[0] = CTX_U32(skops->remote_ip6[0]);
		ip[1] = CTX_U32(skops->remote_ip6[1]);
		ip[2] = CTX_U32(skops->remote_ip6[2]);
		ip[3] = CTX_U32(skops->remote_ip6[3]);
		set_ip6(key.dst_ip, ip);
	}
	key.src_port = (__u16)skops->local_port;
	/* remote_port is network order; kernels expose it shifted into the upper half. */
	__u32 rp = skops->remote_port;
	key.dst_port = (rp >> 16) ? (__u16)bpf_ntohl(rp) : bpf_ntohs((__u16)rp);

	if (bpf_map_update_elem(&sw_tuples, &key, &st->origin, BPF_ANY) != 0) {
		count(COUNTER_TUPLE_ERRORS);
		return 1;
	}
	st->tuple = key;
	st->has_tuple = 1;
	count(COUNTER_PUBLISHED);
	return 1;
}

static __always_inline int getpeername_origin(struct bpf_sock_addr *ctx, struct sock_state **out)
{
	if (!ctx->sk)
		return -1;
	struct sock_state *st = bpf_sk_storage_get(&sw_sockets, ctx->sk, 0, 0);
	if (!st)
		return -1;
	*out = st;
	return 0;
}

SEC("cgroup/getpeername4")
int sw_getpeername4(struct bpf_sock_addr *ctx)
{
	struct sock_state *st;
	if (getpeername_origin(ctx, &st) < 0)
		return 1;
	__u32 *w = (__u32 *)st->origin.dst_ip;
	ctx->user_ip4 = w[3];
	ctx->user_port = bpf_htons(st->origin.dst_port);
	return 1;
}

SEC("cgroup/getpeername6")
int sw_getpeername6(struct bpf_sock_addr *ctx)
{
	struct sock_state *st;
	if (getpeername_origin(ctx, &st) < 0)
		return 1;
	__u32 *w = (__u32 *)st->origin.dst_ip;
	ctx->user_ip6[0] = w[0];
	ctx->user_ip6[1] = w[1];
	ctx->user_ip6[2] = w[2];
	ctx->user_ip6[3] = w[3];
	ctx->user_port = bpf_htons(st->origin.dst_port);
	return 1;
}

SEC("cgroup/sock_release")
int sw_sock_release(struct bpf_sock *sk)
{
	struct sock_state *st = bpf_sk_storage_get(&sw_sockets, sk, 0, 0);
	if (!st || !st->has_tuple)
		return 1;
	/* Delete only our own entry: the tuple may already belong to a newer socket. */
	struct origin *o = bpf_map_lookup_elem(&sw_tuples, &st->tuple);
	if (o && o->sock_cookie == st->origin.sock_cookie) {
		bpf_map_delete_elem(&sw_tuples, &st->tuple);
		count(COUNTER_RELEASED);
	}
	st->has_tuple = 0;
	return 1;
}
