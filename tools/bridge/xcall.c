// SPDX-License-Identifier: MIT
/*
 * Calls across hosts (docs/cross-host.md, "Calls"). Local caller C calls
 * remote server S:
 *
 *   host A (C lives here)                      host B (S lives here)
 *   C --shmrpc_call--> proxy-S                  proxy-C --shmrpc_call_start--> S
 *     br_xc_serve (in fwd.c's receive): a REQ     br_xc_deliver (dlv.c): the
 *     entry on S's stream, in ring order with     call, in stream order with
 *     C's messages; a REPLY job kept               the messages; a WAIT job
 *   shmrpc_reply(proxy-S, req, NOWAIT)    <--     a thread: shmrpc_call_wait,
 *     for each REPLY entry, in order (dlv.c)       each reply a REPLY entry on
 *                                                  C's stream (br_xc_ingest)
 *
 * Requests, replies and cancels are entries of the ordinary streams: order,
 * credits and loss counting are the messages' (fwd.c, dlv.c). The deadline
 * travels as the time left (clocks do not cross hosts).
 *
 * Threads. Waiting for a reply blocks, and so may an error reply (the
 * caller's reply ring full: shmrpc_reply_error cannot be told not to
 * wait): both run in this file's threads (the pool), never in main's loop,
 * which sends the other replies itself with SHMRPC_REPLY_NOWAIT (full: the
 * entry waits in its stream's queue, as a message does). A thread takes a
 * job from the run queue: a REPLY job sends what its request's replies
 * queue holds, in order (an error, and what came after it); a WAIT job waits for
 * its call's replies until the last and hands each to main's thread (the
 * results list, and the wake eventfd). The pool's lock guards the run queue,
 * the results, each job's queue and flags; the threads never take the
 * bridge's lock, and only the main thread frees a job.
 *
 * A proxy that closes: its WAIT jobs are cancelled (shmrpc_call_cancel
 * makes their threads return at once) and waited for; a REPLY job's thread
 * may be blocked in shmrpc_reply_error until its caller reads or its deadline:
 * the proxy's node then stays open (a zombie: out of the tables, its name
 * still held) until that thread is done.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"

#define REPLY_QUEUE 64 /* replies waiting for a slow caller, per request */
#define BACKLOG 256    /* replies taken, not published yet, per proxy */
#define WAIT_FOREVER_MS 1000
#define KEY (2 + BR_NAME + 17)

enum { JOB_REPLY, JOB_WAIT };

struct br_rep { /* a reply waiting to be sent to a local caller */
	struct br_rep *next;
	int32_t status;
	uint32_t flags, len;
	unsigned char data[];
};

struct br_job {
	char key[KEY];	     /* in its proxy's jobs: "q:<caller>:<id>" or "w:<server>:<id>" */
	struct br_job *next; /* run queue */
	int kind;
	struct br_proxy *px;
	bool queued; /* on the run queue or in a thread */
	bool busy;   /* in a thread */
	bool over;   /* a REPLY job sent its last reply (or cannot) */
	bool dead;   /* its proxy closed */
	bool cancelling;
	/* JOB_REPLY: the request of local caller req.from to px's node */
	struct shmrpc_req req;
	struct br_rep *rq, *rq_tail;
	uint32_t nrq;
	/* JOB_WAIT: the call of px's node (a remote caller) to local dst */
	char dst[BR_NAME];
	uint64_t aid, bid; /* the caller's id there, our call's id here */
	int64_t deadline;  /* CLOCK_MONOTONIC, 0: none */
	uint32_t cap;	   /* largest reply that fits one NATS message */
};

struct br_res { /* a WAIT job's reply, or a REPLY job over */
	struct br_res *next;
	struct br_job *job;
	int32_t status;
	uint32_t flags, len;
	bool fin;
	unsigned char data[];
};

struct br_pool {
	pthread_mutex_t mu;
	pthread_cond_t work, idle, sent;
	struct br_job *head, *tail;
	struct br_res *res, *res_tail;
	pthread_t *th;
	uint32_t nth, nbusy;
	bool stop;
	int wfd;
};

/* ------------------------------------------------------------ the pool */

static void wake_main(struct br_pool *p)
{
	uint64_t one = 1;

	if (write(p->wfd, &one, sizeof(one)) < 0)
		blog(BR_LOG_DEBUG, "wake: %s", strerror(errno));
}

/* Under p->mu. */
static void run(struct br_pool *p, struct br_job *j)
{
	if (j->queued || j->dead)
		return;
	j->queued = true;
	j->next = NULL;
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	pthread_cond_signal(&p->work);
}

/* Under p->mu: a result for main's thread. */
static void result(struct br_pool *p, struct br_job *j, int32_t status, uint32_t flags,
		   const void *data, uint32_t len, bool fin)
{
	struct br_res *r = malloc(sizeof(*r) + len);

	if (!r) { /* the caller's deadline, or its server's end, settles it */
		blog(BR_LOG_ERROR, "reply-lost key=%s why=out-of-memory", j->key);
		if (!fin)
			return;
		r = malloc(sizeof(*r));
		if (!r)
			return; /* main never frees this job: a leak, not a crash */
		len = 0;
		status = -ENOMEM;
	}
	*r = (struct br_res){ NULL, j, status, flags, len, fin };
	if (j->kind == JOB_WAIT) {
		j->px->backlog++;
		j->px->backlog_bytes += len;
	}
	if (len)
		memcpy(r->data, data, len);
	if (p->res_tail)
		p->res_tail->next = r;
	else
		p->res = r;
	p->res_tail = r;
	if (r == p->res)
		wake_main(p);
}

/* A REPLY job: send what its queue holds, in order. Returns with p->mu
 * held: the thread lets go of the job in the same section that reports
 * it over (main's thread frees it on that report). */
static void do_reply(struct br_pool *p, struct br_job *j)
{
	struct shmrpc_node *n = j->px->node;
	struct br_rep *r;
	bool fin;
	int rc;

	for (;;) {
		pthread_mutex_lock(&p->mu);
		r = j->dead ? NULL : j->rq;
		if (r && !(j->rq = r->next))
			j->rq_tail = NULL;
		if (!r)
			return;
		j->nrq--;
		pthread_mutex_unlock(&p->mu);
		fin = r->status || !(r->flags & SHMRPC_REPLY_MORE);
		rc = r->status ? shmrpc_reply_error(n, &j->req, r->status) :
				 shmrpc_reply(n, &j->req, r->data, r->len, r->flags);
		if (rc == -EMSGSIZE) /* larger than the caller's ring takes */
			rc = shmrpc_reply_error(n, &j->req, -EMSGSIZE), fin = true;
		free(r);
		if (rc || fin) {
			/* over: its last reply went, or the caller is gone */
			pthread_mutex_lock(&p->mu);
			j->over = true;
			if (rc && !fin)
				j->cancelling = true; /* tell the server's host */
			if (!j->dead)
				result(p, j, 0, 0, NULL, 0, true);
			return;
		}
	}
}

static bool is_dead(struct br_pool *p, const struct br_job *j)
{
	bool dead;

	pthread_mutex_lock(&p->mu);
	dead = j->dead;
	pthread_mutex_unlock(&p->mu);
	return dead;
}

static int wait_ms(const struct br_job *j)
{
	int64_t left;

	if (!j->deadline)
		return WAIT_FOREVER_MS;
	left = (j->deadline - br_now_ns()) / 1000000 + 1;
	return left < 0 ? 0 : left > WAIT_FOREVER_MS ? WAIT_FOREVER_MS : (int)left;
}

/* A WAIT job: every reply of its call, until the last. Returns with p->mu
 * held, as do_reply. */
static void do_wait(struct br_pool *p, struct br_job *j)
{
	struct shmrpc_node *n = j->px->node;
	unsigned char *buf = malloc(j->cap ? j->cap : 1);
	unsigned flags;
	int rc;

	for (;;) {
		/* Replies wait in the call's reply ring (and the server behind
		 * it) while too many taken ones are not out yet: the far
		 * caller is slow, credits hold them back. */
		pthread_mutex_lock(&p->mu);
		while (!j->dead && (j->px->backlog >= BACKLOG ||
				    j->px->backlog_bytes >= j->px->d->br->o.window_bytes))
			pthread_cond_wait(&p->sent, &p->mu);
		pthread_mutex_unlock(&p->mu);
		flags = 0;
		rc = buf ? shmrpc_call_wait(n, j->bid, buf, j->cap, &flags, wait_ms(j)) : -ENOMEM;
		if ((rc == -EAGAIN || rc == -ETIMEDOUT) && !is_dead(p, j) &&
		    (!j->deadline || br_now_ns() < j->deadline))
			continue; /* the call goes on */
		if (rc < 0 || !(flags & SHMRPC_REPLY_MORE)) {
			if (rc == -EAGAIN || rc == -EMSGSIZE || rc == -ENOMEM) {
				(void)shmrpc_call_cancel(n, j->bid); /* over here */
				rc = rc == -EAGAIN ? -ETIMEDOUT : rc;
			}
			pthread_mutex_lock(&p->mu);
			if (!j->dead)
				result(p, j, rc < 0 ? rc : 0, 0, buf, rc < 0 ? 0 : (uint32_t)rc,
				       true);
			j->over = true;
			free(buf);
			return;
		}
		pthread_mutex_lock(&p->mu);
		if (!j->dead)
			result(p, j, 0, SHMRPC_REPLY_MORE, buf, (uint32_t)rc, false);
		pthread_mutex_unlock(&p->mu);
	}
}

static void *worker(void *arg)
{
	struct br_pool *p = arg;
	struct br_job *j;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		if (!(j = p->head)) {
			pthread_cond_wait(&p->work, &p->mu);
			continue;
		}
		if (!(p->head = j->next))
			p->tail = NULL;
		j->busy = true;
		p->nbusy++;
		pthread_mutex_unlock(&p->mu);
		if (j->kind == JOB_REPLY)
			do_reply(p, j); /* back with p->mu */
		else
			do_wait(p, j);
		j->busy = false;
		j->queued = false;
		p->nbusy--;
		if (j->kind == JOB_REPLY && j->rq && !j->over && !j->dead)
			run(p, j); /* replies came while it sent */
		pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* The pool, started at the first call: NULL if it cannot be. */
static struct br_pool *pool(struct bridge *br)
{
	struct br_pool *p = br->pool;
	uint32_t i;

	if (p)
		return p->nth ? p : NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	pthread_cond_init(&p->sent, NULL);
	p->wfd = br->wfd;
	br->pool = p;
	p->th = calloc(br->o.call_threads, sizeof(*p->th));
	for (i = 0; p->th && i < br->o.call_threads; i++) {
		if (pthread_create(&p->th[i], NULL, worker, p))
			break;
		p->nth++;
	}
	if (!p->nth)
		blog(BR_LOG_ERROR, "calls: no thread could start: calls across hosts fail");
	return p->nth ? p : NULL;
}

/* After the proxies closed (their WAIT jobs are over): the threads end. One
 * still blocked in shmrpc_reply after a second is left to the exit. */
void br_xc_sent(struct br_dom *d, struct br_proxy *px, uint32_t n, uint64_t bytes)
{
	struct br_pool *p = d->br->pool;

	pthread_mutex_lock(&p->mu);
	px->backlog -= n;
	px->backlog_bytes -= bytes;
	pthread_cond_broadcast(&p->sent);
	pthread_mutex_unlock(&p->mu);
}

void br_xc_stop(struct bridge *br)
{
	struct br_pool *p = br->pool;
	struct timespec until;
	struct br_res *r;
	uint32_t i;

	if (!p)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	while (p->nbusy && pthread_cond_timedwait(&p->idle, &p->mu, &until) == 0)
		;
	i = p->nbusy;
	pthread_mutex_unlock(&p->mu);
	if (i) {
		blog(BR_LOG_WARN, "calls: %u thread(s) still replying at exit", i);
		return;
	}
	for (i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	while ((r = p->res)) {
		p->res = r->next;
		free(r);
	}
	free(p->th);
	free(p);
	br->pool = NULL;
}

/* ------------------------------------------------------------ entries out */

void br_xc_out_list(struct br_dom *d, struct br_proxy *px)
{
	if (px->out_listed)
		return;
	px->out_listed = true;
	px->out_next = d->outl;
	d->outl = px;
}

/* Entry @e (payload e->data) on px's stream, ahead of its ring's next
 * message; px goes on the out list. 0 or -ENOMEM. */
static int out_push(struct br_dom *d, struct br_proxy *px, const struct br_ent *e, bool backlog)
{
	struct br_out *o = malloc(sizeof(*o) + BR_BATCH_ENTRY + e->len);

	if (!o)
		return -ENOMEM;
	o->next = NULL;
	o->backlog = backlog;
	o->pos = 0;
	/* In a receive: after the messages it took before this request. */
	while (px->rxm && o->pos < px->rxn && px->rxm[o->pos].len != SIZE_MAX)
		o->pos++;
	o->len = br_ent_put(o->ent, e);
	if (e->len)
		memcpy(o->ent + o->len, e->data, e->len);
	o->len += e->len;
	o->size = e->len;
	if (px->out_tail)
		px->out_tail->next = o;
	else
		px->out = o;
	px->out_tail = o;
	br_xc_out_list(d, px);
	return 0;
}

static void out_error(struct br_dom *d, struct br_proxy *px, const char *server, uint64_t id,
		      int err)
{
	struct br_ent e = { .kind = BR_ENT_REPLY, .id = id, .status = err };

	snprintf(e.from, sizeof(e.from), "%s", server);
	if (out_push(d, px, &e, false))
		blog(BR_LOG_ERROR, "reply-lost domain=%s to=%s why=out-of-memory", d->name,
		     px->name);
}

static void key(char *out, char kind, const char *name, uint64_t id)
{
	snprintf(out, KEY, "%c:%s:%" PRIx64, kind, name, id);
}

static struct br_job *job_new(struct br_proxy *px, int kind, const char *name, uint64_t id)
{
	struct br_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	key(j->key, kind == JOB_REPLY ? 'q' : 'w', name, id);
	j->kind = kind;
	j->px = px;
	if (br_map_put(&px->jobs, j)) { /* -EEXIST: a duplicate id */
		free(j);
		return NULL;
	}
	return j;
}

static void job_free(struct br_job *j)
{
	struct br_rep *r;

	while ((r = j->rq)) {
		j->rq = r->next;
		free(r);
	}
	free(j);
}

/* ------------------------------------------------------------ host A */

/* In fwd.c's receive (main's thread, under mu): a local caller's request to
 * the remote node px stands for goes out on px's stream as a REQ. */
void br_xc_serve(struct shmrpc_node *node, const struct shmrpc_req *req, void *arg)
{
	struct br_proxy *px = arg;
	struct br_dom *d = px->d;
	struct br_ent e = { .kind = BR_ENT_REQ, .id = req->id, .data = req->data };
	struct br_job *j;
	int64_t left;

	if (req->len > d->br->max_payload - BR_WIRE_MAX - BR_BATCH_ENTRY) {
		(void)shmrpc_reply_error(node, req, -EMSGSIZE); /* NATS would refuse it */
		return;
	}
	if (!pool(d->br) || !(j = job_new(px, JOB_REPLY, req->from, req->id))) {
		(void)shmrpc_reply_error(node, req, -ENOMEM);
		return;
	}
	j->req = *req;
	j->req.data = NULL; /* valid only in this call */
	e.len = (uint32_t)req->len;
	snprintf(e.from, sizeof(e.from), "%s", req->from);
	if (req->deadline_ns) {
		left = (req->deadline_ns - br_now_ns()) / 1000;
		e.tmo_us = left > 0 ? (uint64_t)left : 1;
	}
	if (out_push(d, px, &e, false)) {
		br_map_del(&px->jobs, j->key);
		job_free(j);
		(void)shmrpc_reply_error(node, req, -ENOMEM);
	}
}

/* A reply from the server px stands for, to local caller l. */
/*
 * The common case, in main's thread: no earlier reply of the request waits
 * for a thread, and the caller's reply ring has room (SHMRPC_REPLY_NOWAIT).
 * 1: done (-EAGAIN in *rc: full, its stream waits and retries, as for a
 * message); 0: for a thread (an error reply, which may block).
 */
static int reply_now(struct br_dom *d, struct br_proxy *px, struct br_job *j,
		     const struct br_ent *e, int *rc)
{
	struct br_pool *p = d->br->pool;
	bool idle, fin = !(e->flags & SHMRPC_REPLY_MORE);
	struct br_ent c = { .kind = BR_ENT_CANCEL, .id = j->req.id };

	pthread_mutex_lock(&p->mu); /* only main's thread adds work to j */
	idle = !j->queued && !j->rq && !j->over && !j->cancelling;
	pthread_mutex_unlock(&p->mu);
	if (!idle || e->status)
		return 0;
	*rc = shmrpc_reply(px->node, &j->req, e->data, e->len, e->flags | SHMRPC_REPLY_NOWAIT);
	if (*rc == -EAGAIN || *rc == -EMSGSIZE)
		return *rc == -EAGAIN; /* -EMSGSIZE: a thread sends the error */
	if (*rc && !fin) {	       /* the caller went: tell the server's host */
		snprintf(c.from, sizeof(c.from), "%s", j->req.from);
		(void)out_push(d, px, &c, false);
	}
	if (*rc || fin) {
		br_map_del(&px->jobs, j->key);
		job_free(j);
	}
	*rc = 0;
	return 1;
}

static int reply_in(struct br_dom *d, struct br_proxy *px, struct br_local *l,
		    const struct br_ent *e)
{
	struct br_pool *p = d->br->pool;
	struct br_ent err = *e;
	char k[KEY];
	struct br_job *j;
	struct br_rep *r;
	int rc = 0;

	key(k, 'q', l->name, e->id);
	if (!p || !(j = br_map_get(&px->jobs, k)))
		return 0; /* over here (cancelled, deadline, caller gone): late */
	if (reply_now(d, px, j, e, &rc))
		return rc;
	if (rc == -EMSGSIZE) { /* larger than the caller's ring takes */
		err.status = -EMSGSIZE;
		err.len = 0;
		e = &err;
	}
	pthread_mutex_lock(&p->mu);
	if (j->over || j->cancelling) {
		rc = 0;
	} else if (j->nrq >= REPLY_QUEUE) {
		rc = -EAGAIN; /* the caller is slow to read: its stream waits */
	} else if ((r = malloc(sizeof(*r) + e->len))) {
		*r = (struct br_rep){ NULL, e->status, e->flags, e->len };
		memcpy(r->data, e->data, e->len);
		if (j->rq_tail)
			j->rq_tail->next = r;
		else
			j->rq = r;
		j->rq_tail = r;
		j->nrq++;
		run(p, j);
	} else {
		rc = -EAGAIN; /* memory: retried */
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* ------------------------------------------------------------ host B */

/* A remote caller's request (from its proxy px) to local server l. */
static int req_in(struct br_dom *d, struct br_proxy *px, struct br_local *l, const struct br_ent *e,
		  int64_t since_ns)
{
	int64_t now = br_now_ns(), dl = 0;
	struct br_pool *p;
	struct br_job *j;
	uint64_t bid;
	int rc;

	if (e->tmo_us) {
		dl = since_ns +
		     (int64_t)(e->tmo_us > INT64_MAX / 2000 ? INT64_MAX / 2000 : e->tmo_us) * 1000;
		if (now >= dl) {
			out_error(d, px, l->name, e->id, -ETIMEDOUT);
			return 0;
		}
	}
	/* Never blocks (timeout 0), so the server sees no deadline; the
	 * thread below ends the call at it (a cancel the server can see). */
	rc = shmrpc_call_start(px->node, l->name, e->data, e->len, 0, &bid);
	switch (rc) {
	case 0:
		break;
	case -EAGAIN: /* the server's ring is full, or max_calls in flight */
	case -ENOENT: /* the node is gone: held until the poll drops it */
	case -EPIPE:
	case -ENOSPC:
	case -ENOMEM:
	case -EMFILE:
	case -ENFILE:
		return -EAGAIN;
	default: /* -EOPNOTSUPP, -EMSGSIZE, -EBUSY...: the caller's answer */
		out_error(d, px, l->name, e->id, rc);
		return 0;
	}
	p = pool(d->br);
	if (!p || !(j = job_new(px, JOB_WAIT, l->name, e->id))) {
		(void)shmrpc_call_cancel(px->node, bid);
		out_error(d, px, l->name, e->id, p ? -ENOMEM : -EAGAIN);
		return 0;
	}
	snprintf(j->dst, sizeof(j->dst), "%s", l->name);
	j->aid = e->id;
	j->bid = bid;
	j->deadline = dl;
	j->cap = d->br->max_payload - BR_WIRE_MAX - BR_BATCH_ENTRY;
	pthread_mutex_lock(&p->mu);
	run(p, j);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* The caller cancelled: so does our call. */
static int cancel_in(struct br_proxy *px, struct br_local *l, const struct br_ent *e)
{
	char k[KEY];
	struct br_job *j;

	key(k, 'w', l->name, e->id);
	if ((j = br_map_get(&px->jobs, k)))
		(void)shmrpc_call_cancel(px->node, j->bid); /* its thread ends it */
	return 0;
}

int br_xc_deliver(struct br_dom *d, struct br_proxy *px, struct br_local *l, const struct br_ent *e,
		  int64_t since_ns)
{
	switch (e->kind) {
	case BR_ENT_REQ:
		return req_in(d, px, l, e, since_ns);
	case BR_ENT_REPLY:
		return reply_in(d, px, l, e);
	default:
		return cancel_in(px, l, e);
	}
}

/* ------------------------------------------------------------ main */

/* A result of job j: a reply on its way back, or a request over. */
static void ingest_one(struct br_dom *d, struct br_res *r)
{
	struct br_job *j = r->job;
	struct br_ent e = { .id = j->aid };

	if (j->kind == JOB_WAIT) {
		e.kind = BR_ENT_REPLY;
		e.status = r->status;
		e.flags = r->flags;
		e.len = r->len;
		e.data = r->data;
		snprintf(e.from, sizeof(e.from), "%s", j->dst);
		if (out_push(d, j->px, &e, true)) {
			blog(BR_LOG_ERROR, "reply-lost domain=%s to=%s why=out-of-memory", d->name,
			     j->px->name);
			br_xc_sent(d, j->px, 1, r->len);
		}
	} else if (j->cancelling) { /* the caller went before the last reply */
		e.kind = BR_ENT_CANCEL;
		e.id = j->req.id;
		snprintf(e.from, sizeof(e.from), "%s", j->req.from);
		(void)out_push(d, j->px, &e, false);
	}
	if (r->fin) {
		br_map_del(&j->px->jobs, j->key);
		job_free(j);
	}
}

void br_xc_ingest(struct br_dom *d)
{
	struct br_pool *p = d->br->pool;
	struct br_res *r, *keep = NULL, **kt = &keep, *mine = NULL, **mt = &mine;

	if (!p || !p->res)
		return;
	pthread_mutex_lock(&p->mu);
	for (r = p->res; r; r = r->next) /* this domain's, in order */
		if (r->job->px->d == d)
			*mt = r, mt = &r->next;
		else
			*kt = r, kt = &r->next;
	*mt = *kt = NULL;
	p->res = keep;
	for (p->res_tail = NULL, r = keep; r; r = r->next)
		p->res_tail = r;
	pthread_mutex_unlock(&p->mu);
	while ((r = mine)) {
		mine = r->next;
		ingest_one(d, r);
		free(r);
	}
}

/* Requests whose callers cancelled (or went, or passed their deadline):
 * the server's host is told, and the request ends here. */
void br_xc_tick(struct br_dom *d)
{
	struct br_pool *p = d->br->pool;
	struct br_proxy *px;
	struct br_job *j;
	struct br_rep *r;
	uint32_t i = 0, k;

	if (!p)
		return;
	while ((px = br_map_next(&d->proxies, &i)))
		for (k = 0; (j = br_map_next(&px->jobs, &k));) {
			if (j->kind != JOB_REPLY || j->cancelling || j->over ||
			    shmrpc_req_cancelled(px->node, &j->req) != 1)
				continue;
			r = malloc(sizeof(*r));
			pthread_mutex_lock(&p->mu);
			if (r && !j->over) {
				j->cancelling = true;
				*r = (struct br_rep){ j->rq, -ECANCELED, 0, 0 };
				j->rq = r; /* first: the rest is not wanted */
				if (!r->next)
					j->rq_tail = r;
				j->nrq++;
				run(p, j);
				r = NULL;
			}
			pthread_mutex_unlock(&p->mu);
			free(r);
		}
}

/* ------------------------------------------------------------ proxies */

static void drop_out(struct br_proxy *px)
{
	struct br_out *o;

	while ((o = px->out)) {
		px->out = o->next;
		free(o);
	}
	px->out_tail = NULL;
}

/* Under p->mu: results of px's jobs, dropped. */
static void drop_results(struct br_pool *p, struct br_proxy *px)
{
	struct br_res **pp = &p->res, *r;

	p->res_tail = NULL;
	while ((r = *pp)) {
		if (r->job->px == px) {
			*pp = r->next;
			free(r);
		} else {
			p->res_tail = r;
			pp = &r->next;
		}
	}
}

/* Under p->mu: px's jobs that no thread holds, freed; true if none is left. */
static bool free_idle(struct br_pool *p, struct br_proxy *px)
{
	struct br_job **pp, *j;
	uint32_t i = 0;
	bool left = false;

	for (pp = &p->head, p->tail = NULL; (j = *pp);) /* off the run queue */
		if (j->px == px && !j->busy) {
			*pp = j->next;
			j->queued = false;
		} else {
			p->tail = j;
			pp = &j->next;
		}
	while ((j = br_map_next(&px->jobs, &i)))
		left |= j->busy;
	if (left)
		return false;
	i = 0;
	while ((j = br_map_next(&px->jobs, &i)))
		job_free(j);
	br_map_free(&px->jobs);
	return true;
}

bool br_xc_proxy_gone(struct br_dom *d, struct br_proxy *px)
{
	struct br_pool *p = d->br->pool;
	struct br_proxy **pp;
	struct br_job *j;
	uint32_t i = 0;
	bool idle, waits;

	drop_out(px);
	for (pp = &d->outl; *pp; pp = &(*pp)->out_next)
		if (*pp == px) {
			*pp = px->out_next;
			break;
		}
	px->out_listed = false;
	if (!p) {
		br_map_free(&px->jobs);
		return true;
	}
	pthread_mutex_lock(&p->mu);
	while ((j = br_map_next(&px->jobs, &i))) {
		j->dead = true;
		if (j->kind == JOB_WAIT && !j->over) /* its thread returns at once */
			(void)shmrpc_call_cancel(px->node, j->bid);
	}
	drop_results(p, px);
	pthread_cond_broadcast(&p->sent); /* threads held by its backlog */
	/* WAIT jobs' threads return within a call_wait; a REPLY job's may
	 * block until its caller reads: not waited for */
	do {
		waits = false;
		for (i = 0; (j = br_map_next(&px->jobs, &i));)
			waits |= j->kind == JOB_WAIT && j->busy;
		if (waits)
			pthread_cond_wait(&p->idle, &p->mu);
	} while (waits);
	idle = free_idle(p, px);
	pthread_mutex_unlock(&p->mu);
	if (!idle) {
		blog(BR_LOG_INFO, "proxy-zombie domain=%s node=%s why=reply-in-progress", d->name,
		     px->name);
		px->zombie = true;
		px->zombie_next = d->zombies;
		d->zombies = px;
	}
	return idle;
}

void br_xc_reap(struct br_dom *d, bool all, void (*close_fn)(struct br_dom *, struct br_proxy *))
{
	struct br_pool *p = d->br->pool;
	struct br_proxy **pp = &d->zombies, *px;
	bool idle;

	while ((px = *pp)) {
		pthread_mutex_lock(&p->mu);
		idle = free_idle(p, px);
		pthread_mutex_unlock(&p->mu);
		if (!idle && !all) {
			pp = &px->zombie_next;
			continue;
		}
		*pp = px->zombie_next;
		if (idle) {
			drop_out(px);
			close_fn(d, px);
		}
		/* else: at exit, a thread still in shmrpc_reply: left to the exit */
	}
}
