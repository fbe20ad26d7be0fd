// SPDX-License-Identifier: MIT
/*
 * The C++ binding (include/shmrpc.hpp): every call, errors, timeouts, the
 * zero-copy guards, the event fd, and a forked peer exchanging with us and
 * then SIGKILLed. Built twice: with exceptions (test_cpp) and with
 * -fno-exceptions -fno-rtti (test_cpp_noexc). No cmocka: its longjmp would
 * skip the destructors this binding is made of.
 */
#include <shmrpc.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <dirent.h>
#include <fcntl.h>
#include <limits>
#include <poll.h>
#include <signal.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using shmrpc::node;

static int failures;

#define CHECK(c)                                                                               \
	do {                                                                                   \
		if (!(c)) {                                                                    \
			std::fprintf(stderr, "%s:%d: error: CHECK(%s) failed\n", __FILE__, \
				     __LINE__, #c);                                            \
			failures++;                                                            \
		}                                                                              \
	} while (0)

/* A result that must have succeeded; its error's text otherwise. */
#define REQUIRE_OK(r)                                                                        \
	do {                                                                                 \
		if (!(r)) {                                                                  \
			std::fprintf(stderr, "%s:%d: error: %s failed: %s\n", __FILE__,      \
				     __LINE__, #r, (r).error().message());                   \
			failures++;                                                          \
			return;                                                              \
		}                                                                            \
	} while (0)

static char domain[64];

static void fresh_domain()
{
	static unsigned n;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	std::snprintf(domain, sizeof(domain), "cpp%d-%u-%lx", (int)getpid(), ++n,
		      (unsigned long)(ts.tv_nsec & 0xfffff));
}

static int shm_files(const char *dom)
{
	std::string pre = std::string("shmrpc.") + dom + ".";
	int count = 0;
	DIR *d = opendir("/dev/shm");

	if (!d)
		return -1;
	while (struct dirent *e = readdir(d))
		count += std::string(e->d_name).compare(0, pre.size(), pre) == 0;
	closedir(d);
	return count;
}

static shmrpc::options opts(std::uint32_t ring_bytes = 0)
{
	shmrpc::options o;
	o.domain = domain;
	o.ring_bytes = ring_bytes;
	return o;
}

/* ------------------------------------------------------------------ */

static void test_timeouts()
{
	static_assert(shmrpc::timeout(100us).ms() == 1, "rounded up, not to 0");
	static_assert(shmrpc::timeout(0ms).ms() == 0, "0 never blocks");
	static_assert(shmrpc::timeout(-5ms).ms() == 0, "negative: never blocks");
	static_assert(shmrpc::timeout(290ms).ms() == 290, "");
	static_assert(shmrpc::timeout(1ns).ms() == 1, "");
	static_assert(shmrpc::timeout(1001us).ms() == 2, "");
	static_assert(shmrpc::timeout(std::chrono::hours(1000000)).ms() == INT_MAX, "capped");
	static_assert(shmrpc::timeout(std::chrono::nanoseconds(INT64_MAX)).ms() == INT_MAX, "");
	static_assert(shmrpc::timeout(std::chrono::duration<int, std::nano>(INT_MAX)).ms() ==
			      2148,
		      "no overflow in a narrow type");
	static_assert(shmrpc::forever.ms() == -1 && shmrpc::no_wait.ms() == 0, "");
	static_assert(shmrpc::timeout::from_ms(-7).ms() == -1, "");
	CHECK(shmrpc::timeout(std::chrono::duration<double, std::milli>(1.5)).ms() == 2);
	CHECK(shmrpc::timeout(std::chrono::duration<double>(0.29)).ms() == 290);
	CHECK(shmrpc::timeout(std::chrono::duration<double>(1e300)).ms() == INT_MAX);
	CHECK(shmrpc::timeout(std::chrono::duration<double>(INFINITY)).ms() == INT_MAX);
	CHECK(shmrpc::timeout(std::chrono::duration<double>(NAN)).ms() == 0);
	CHECK(shmrpc::timeout(std::chrono::duration<double>(1e-9)).ms() == 1);
}

static void test_span_and_errors()
{
	char arr[8] = "abc";
	std::string s = "hello";
	std::vector<char> v(3, 'x');
	shmrpc::span<char> a(arr), b(s), c(v);

	CHECK(a.size() == 8 && a.data() == arr && b.size() == 5 && c.size() == 3);
	CHECK(b.subspan(1, 3).size() == 3 && b.subspan(1, 3)[0] == 'e');
	CHECK(b.subspan(9).empty() && b.first(2).size() == 2 && b.first(99).size() == 5);
	std::size_t n = 0;
	for (char ch : c)
		n += ch == 'x';
	CHECK(n == 3);

	shmrpc::error e(ETIMEDOUT, "the text");
	std::error_code ec = e;
	CHECK(ec.category() == shmrpc::category() && ec.value() == ETIMEDOUT);
	CHECK(ec == std::errc::timed_out && e == std::errc::timed_out);
	CHECK(e != std::errc::broken_pipe);
	CHECK(std::string(shmrpc::category().name()) == "shmrpc");
	CHECK(ec.message() == std::generic_category().message(ETIMEDOUT));
	CHECK(std::string(e.message()) == "the text");
	CHECK(shmrpc::error().value() == 0);
}

static void test_open_close_move()
{
	fresh_domain();
	{
		auto a = node::open("a", opts(8192));
		REQUIRE_OK(a);
		CHECK(std::string(a->name()) == "a" && std::string(a->domain()) == domain);
		CHECK(std::string(a->backend()) == "uring" || std::string(a->backend()) == "futex");
		auto max = a->max_size();
		CHECK(max && *max == 8192 / 2 - 8);
		node moved = std::move(*a);
		CHECK(moved && !*a && moved.get());
		auto b = node::open("b", opts());
		REQUIRE_OK(b);
		node other = std::move(*b);
		other = std::move(moved); /* closes "b" */
		CHECK(!moved && std::string(other.name()) == "a");
		auto q = node::open("q", opts());
		REQUIRE_OK(q);
		auto local = q->is_local("b");
		CHECK(local && !*local);
		other.close();
		other.close(); /* idempotent */
		CHECK(!other && std::string(other.name()).empty());
		auto closed = other.send("q", "x"); /* calls on an empty node fail, cleanly */
		CHECK(!closed && closed.error() == std::errc::invalid_argument);
		CHECK(!other.stats() && !other.nodes() && other.fd() == -EINVAL);
	}
	CHECK(shm_files(domain) == 0);
}

static void test_open_errors()
{
	fresh_domain();
	auto bad = node::open("a", opts(5000));
	CHECK(!bad && bad.error() == std::errc::invalid_argument);
	CHECK(std::string(bad.error().message()) ==
	      "opts.ring_bytes 5000: not a power of two in [4096, 1073741824]");
	auto a = node::open("a", opts());
	REQUIRE_OK(a);
	auto dup = node::open("a", opts());
	CHECK(!dup && dup.error() == std::errc::file_exists);
	auto longname = node::open(std::string(64, 'x'), opts());
	CHECK(!longname && longname.error() == std::errc::filename_too_long);
	auto nul = node::open(std::string_view("a\0b", 3), opts());
	CHECK(!nul && nul.error() == std::errc::invalid_argument);
	shmrpc::options o = opts();
	o.backend = "URING";
	auto be = node::open("c", o);
	CHECK(!be && std::string(be.error().message()).find("URING") != std::string::npos);
	/* a call that records no text of its own (recv) shows no older text */
	char buf[8];
	auto self = a->recv(buf, shmrpc::no_wait);
	CHECK(!self && self.error() == std::errc::resource_unavailable_try_again);
	CHECK(std::string(self.error().message()).find("URING") == std::string::npos);
	CHECK(std::string(self.error().message()).find("out is NULL") == std::string::npos);
}

static void test_send_recv()
{
	fresh_domain();
	auto a = node::open("a", opts());
	auto b = node::open("b", opts());
	REQUIRE_OK(a);
	REQUIRE_OK(b);
	REQUIRE_OK(a->send("b", "hello"));
	char buf[64];
	auto r = b->recv(buf, 1s);
	REQUIRE_OK(r);
	CHECK(std::string_view(buf, r->size) == "hello" && r->from() == "a");
	std::string big(100000, 'z');
	REQUIRE_OK(a->send("b", big.data(), big.size(), 1s));
	auto small = b->recv(buf, 1s);
	CHECK(!small && small.error() == std::errc::message_size);
	std::string out;
	auto r2 = b->recv(out, 1s); /* grows: the message stayed queued */
	REQUIRE_OK(r2);
	CHECK(out == big && r2->size == big.size() && r2->from() == "a");
	REQUIRE_OK(a->send("b", ""));
	auto r3 = b->recv(out, 1s);
	CHECK(r3 && out.empty() && r3->size == 0);
	auto none = b->recv(buf, shmrpc::no_wait);
	CHECK(!none && none.error() == std::errc::resource_unavailable_try_again);
	auto late = b->recv(buf, 2ms);
	CHECK(!late && late.error() == std::errc::timed_out);
	auto nobody = a->send("nobody", "x");
	CHECK(!nobody && nobody.error() == std::errc::no_such_file_or_directory);
	auto huge = a->send("b", std::string(1 << 20, 'x'));
	CHECK(!huge && huge.error() == std::errc::message_size);
}

static void test_broadcast_flush_queries()
{
	fresh_domain();
	auto a = node::open("a", opts());
	REQUIRE_OK(a);
	auto none = a->broadcast("nobody");
	CHECK(none && *none == 0);
	std::vector<node> more;
	for (int i = 0; i < 70; i++) { /* more than nodes()'s first guess */
		auto n = node::open("n" + std::to_string(i), opts());
		REQUIRE_OK(n);
		more.push_back(std::move(*n));
	}
	auto names = a->nodes();
	REQUIRE_OK(names);
	CHECK(names->size() == 71);
	auto got = a->broadcast("all", 1s);
	CHECK(got && *got == 70);
	char buf[8];
	auto r = more[5].recv(buf, 1s);
	CHECK(r && std::string_view(buf, r->size) == "all");
	auto w = a->warmup();
	CHECK(w && *w == 70);
	REQUIRE_OK(a->send("n1", "deferred", shmrpc::forever, SHMRPC_SEND_DEFER));
	auto f = a->flush();
	CHECK(f && *f >= 0);
	auto f2 = f; /* results of copyable types copy */
	CHECK(f2 && *f2 == *f);
	auto st = a->stats();
	REQUIRE_OK(st);
	CHECK(st->msgs_sent == 71 && st->connects == 70 && st->rings_out == 70);
	auto ms = a->max_size("n3");
	CHECK(ms && *ms == 256 * 1024 / 2 - 8);
	auto gone = a->max_size("nobody");
	CHECK(!gone && gone.error() == std::errc::no_such_file_or_directory);
	auto local = a->is_local("n69");
	CHECK(local && *local);
	auto badname = a->is_local("bad name");
	CHECK(!badname && badname.error() == std::errc::invalid_argument);
	auto wn = a->wait_node("n0", shmrpc::no_wait);
	CHECK(wn.has_value());
	auto wl = a->wait_node("late", 1ms);
	CHECK(!wl && wl.error() == std::errc::timed_out);
	auto avail = shmrpc::backend_available(shmrpc::backend_default());
	CHECK(avail && *avail);
	auto unknown = shmrpc::backend_available("URING");
	CHECK(!unknown && unknown.error() == std::errc::invalid_argument);
}

static void test_broadcast_marks()
{
	fresh_domain();
	auto a = node::open("a", opts());
	REQUIRE_OK(a);
	shmrpc::options o = opts();
	o.flags = SHMRPC_OPEN_BCAST_MARKS;
	auto m = node::open("m", o);
	REQUIRE_OK(m);
	auto got = a->broadcast("cast", 1s);
	CHECK(got && *got == 1);
	REQUIRE_OK(a->send("m", "after", 1s));
	char bufs[4][16];
	shmrpc_msg msgs[4];
	shmrpc_mark marks[4] = {};
	for (int i = 0; i < 4; i++)
		msgs[i] = shmrpc_msg{ bufs[i], sizeof(bufs[i]), 0, "" };
	auto n = m->recv_batch_marks(msgs, marks, 1s);
	CHECK(n && *n == 1); /* the marked copy ends the batch */
	CHECK(std::string_view(bufs[0], msgs[0].len) == "cast");
	CHECK(marks[0].bcast != 0 && marks[0].copies == 1);
	n = m->recv_batch_marks(msgs, marks, 1s);
	CHECK(n && *n == 1 && marks[0].bcast == 0);
	CHECK(std::string_view(bufs[0], msgs[0].len) == "after");
	auto few = m->recv_batch_marks(msgs, shmrpc::span<shmrpc_mark>(marks, 2),
				       shmrpc::no_wait);
	CHECK(!few && few.error() == std::errc::invalid_argument);
	o.flags = 0x2;
	auto bad = node::open("bad", o);
	CHECK(!bad && bad.error() == std::errc::invalid_argument);
}

static void test_zero_copy()
{
	fresh_domain();
	auto a = node::open("a", opts());
	auto b = node::open("b", opts());
	REQUIRE_OK(a);
	REQUIRE_OK(b);
	{
		auto tx = a->reserve("b", 16, 1s);
		REQUIRE_OK(tx);
		CHECK(tx->data().size() == 16);
		std::memcpy(tx->data().data(), "zero-copy", 9);
		auto too_long = tx->commit(17);
		CHECK(!too_long && too_long.error() == std::errc::invalid_argument && *tx);
		REQUIRE_OK(tx->commit(9));
		CHECK(!*tx && tx->data().empty());
		auto again = tx->commit(1);
		CHECK(!again);
	}
	{
		auto tx = a->reserve("b", 4);
		REQUIRE_OK(tx);
		std::memcpy(tx->data().data(), "drop", 4);
		shmrpc::tx_guard moved = std::move(*tx);
		CHECK(moved && !*tx);
		auto dl = a->send("b", "same thread, same target");
		CHECK(!dl && dl.error() == std::errc::resource_deadlock_would_occur);
	} /* the destructor cancels */
	{
		auto rx = b->peek(1s);
		REQUIRE_OK(rx);
		CHECK(rx->data() == "zero-copy" && rx->from() == "a" && rx->size() == 9);
		char buf[8];
		shmrpc::rx_guard moved = std::move(*rx);
		CHECK(moved.data() == "zero-copy" && rx->data().empty());
		REQUIRE_OK(moved.release());
		CHECK(moved.data().empty());
		auto none = b->recv(buf, shmrpc::no_wait); /* the cancelled one never came */
		CHECK(!none && none.error() == std::errc::resource_unavailable_try_again);
	}
	REQUIRE_OK(a->send("b", "released by the destructor"));
	{
		auto rx = b->peek(1s);
		REQUIRE_OK(rx);
	}
	char buf[8];
	auto none = b->recv(buf, shmrpc::no_wait);
	CHECK(!none && none.error() == std::errc::resource_unavailable_try_again);
}

static void test_dispatch_start()
{
	fresh_domain();
	auto a = node::open("a", opts());
	auto b = node::open("b", opts());
	REQUIRE_OK(a);
	REQUIRE_OK(b);
	for (int i = 0; i < 5; i++)
		REQUIRE_OK(a->send("b", std::to_string(i)));
	std::string seen;
	auto d = b->dispatch(
		[&](std::string_view from, std::string_view data) {
			CHECK(from == "a");
			seen += data;
			(void)b->send(from, "echo"); /* a handler may send */
		},
		1s);
	CHECK(d && *d == 5 && seen == "01234");
	auto e = b->dispatch([](std::string_view, std::string_view) {}, shmrpc::no_wait);
	CHECK(!e && e.error() == std::errc::resource_unavailable_try_again);
#if defined(__cpp_exceptions)
	REQUIRE_OK(a->send("b", "x"));
	REQUIRE_OK(a->send("b", "y"));
	int calls = 0;
	bool caught = false;
	try {
		(void)b->dispatch(
			[&](std::string_view, std::string_view data) {
				calls++;
				if (data == "x")
					throw std::runtime_error("from the handler");
			},
			1s);
	} catch (const std::runtime_error &) {
		caught = true;
	}
	CHECK(caught && calls == 2); /* rethrown after every message taken was handled */
#endif
	std::atomic<int> count{ 0 };
	REQUIRE_OK(b->start([&](std::string_view, std::string_view) { count++; }));
	char buf[8];
	auto busy = b->recv(buf, shmrpc::no_wait);
	CHECK(!busy && busy.error() == std::errc::device_or_resource_busy);
	auto twice = b->start([](std::string_view, std::string_view) {});
	CHECK(!twice && twice.error() == std::errc::connection_already_in_progress);
	for (int i = 0; i < 10; i++)
		REQUIRE_OK(a->send("b", "bg"));
	for (int i = 0; i < 1000 && count < 10; i++)
		std::this_thread::sleep_for(10ms);
	CHECK(count == 10);
	REQUIRE_OK(b->stop());
	auto again = b->stop();
	CHECK(!again && again.error() == std::errc::connection_already_in_progress);
	REQUIRE_OK(b->start([&](std::string_view, std::string_view) { count++; }));
	b->close(); /* running: close() stops the thread, then frees fn */
}

/* ------------------------------------------------------------------ two processes */

static int child_echo(std::uint32_t ring)
{
	auto n = node::open("child", opts(ring));
	if (!n)
		return 10;
	std::string buf;
	for (;;) {
		auto r = n->recv(buf, 10s);
		if (!r)
			return 11;
		if (buf == "quit")
			return 0;
		std::reverse(buf.begin(), buf.end());
		if (!n->send(r->from(), buf, 10s))
			return 12;
	}
}

static pid_t fork_echo(node &parent, std::uint32_t ring = 0)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(child_echo(ring));
	auto w = parent.wait_node("child", 10s);
	CHECK(w.has_value());
	return pid;
}

static int wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_two_processes()
{
	fresh_domain();
	auto p = node::open("parent", opts());
	REQUIRE_OK(p);
	pid_t pid = fork_echo(*p);
	std::string out;
	for (int i = 0; i < 300; i++) {
		std::string msg = std::to_string(i) + std::string(static_cast<std::size_t>(i) * 7, '.');
		REQUIRE_OK(p->send("child", msg, 10s));
		auto r = p->recv(out, 10s);
		REQUIRE_OK(r);
		std::reverse(msg.begin(), msg.end());
		CHECK(out == msg && r->from() == "child");
	}
	/* the event fd: readable once the child's reply is waiting */
	int fd = p->fd();
	CHECK(fd >= 0 && p->fd() == fd);
	REQUIRE_OK(p->send("child", "polled"));
	struct pollfd pfd = { fd, POLLIN, 0 };
	int ready = 0;
	for (int i = 0; i < 100 && !ready; i++) {
		if (poll(&pfd, 1, 100) != 1)
			continue;
		auto d = p->dispatch(
			[&](std::string_view, std::string_view data) { CHECK(data == "dellop"); },
			shmrpc::no_wait);
		ready = d.has_value(); /* readable can be spurious */
	}
	CHECK(ready == 1);
	REQUIRE_OK(p->send("child", "quit"));
	CHECK(wait_child(pid) == 0);
}

static void test_peer_killed()
{
	fresh_domain();
	auto p = node::open("parent", opts());
	REQUIRE_OK(p);
	pid_t pid = fork();
	if (pid == 0) { /* a receiver that never receives, with a small ring */
		auto n = node::open("child", opts(4096));
		if (!n)
			_exit(10);
		pause();
		_exit(0);
	}
	REQUIRE_OK(p->wait_node("child", 10s));
	int sent = 0;
	while (p->send("child", std::string(100, 'x'), shmrpc::no_wait))
		sent++;
	CHECK(sent > 10);
	std::thread killer([pid] {
		std::this_thread::sleep_for(200ms);
		kill(pid, SIGKILL);
	});
	auto start = std::chrono::steady_clock::now();
	auto blocked = p->send("child", std::string(100, 'x'), 30s); /* as full as before */
	auto took = std::chrono::steady_clock::now() - start;
	killer.join();
	if (!blocked && blocked.error() != std::errc::broken_pipe)
		std::fprintf(stderr, "blocked send: %s\n", blocked.error().message());
	CHECK(!blocked && blocked.error() == std::errc::broken_pipe);
	CHECK(took < 10s); /* told by the kernel, not by the timeout */
	CHECK(wait_child(pid) == 128 + SIGKILL);
}

/* ------------------------------------------------------------------ request/response */

/* b serves (start()'s thread), a calls: every form of call, errors, a
 * stream cancelled midway, replies deferred to another thread. */
static void test_call_serve()
{
	fresh_domain();
	auto a = node::open("a", opts());
	auto b = node::open("b", opts());
	REQUIRE_OK(a);
	REQUIRE_OK(b);
	std::atomic<bool> saw_cancel{ false };
	std::vector<shmrpc::request> held; /* touched by b's thread only, then joined */
	std::thread later;
	REQUIRE_OK(b->serve([&](shmrpc::request &req) {
		std::string d(req.data()); /* copied out of the ring first */
		if (d == "err") {
			(void)req.reply_error(std::errc::no_such_file_or_directory);
		} else if (d == "stream") {
			for (int i = 0; !req.cancelled(); i++)
				if (!req.reply(std::to_string(i), true))
					break;
			saw_cancel = true;
		} else if (d == "later") {
			held.push_back(req); /* a copy: replied to from another thread */
			if (held.size() == 3)
				later = std::thread([&held] {
					for (auto it = held.rbegin(); it != held.rend(); ++it)
						CHECK(it->reply(std::string("late") +
								std::to_string(it->id()))
							      .has_value());
				});
		} else if (d == "throw") {
#if defined(__cpp_exceptions)
			throw std::runtime_error("serve function failed");
#else
			(void)req.reply_error(EIO);
#endif
		} else if (d == "hang") {
			/* never answered: the caller times out */
		} else if (d == "nowait") { /* room in the ring: it goes at once */
			CHECK(req.reply("now", false, true).has_value());
		} else {
			std::string r(d.rbegin(), d.rend());
			CHECK(req.from() == "a" && req.deadline_ns() != 0);
			CHECK(req.reply(r).has_value());
		}
	}));
	REQUIRE_OK(b->start([](std::string_view, std::string_view) {}));

	auto r = a->call("b", "hello", 10s);
	REQUIRE_OK(r);
	CHECK(*r == "olleh");
	auto nw = a->call("b", "nowait", 10s);
	REQUIRE_OK(nw);
	CHECK(*nw == "now");
	char small[8];
	auto n = a->call("b", "abc", small, 10s);
	CHECK(n && *n == 3 && std::string_view(small, 3) == "cba");
	auto big = a->call("b", std::string(5000, 'x'), small, 10s);
	CHECK(!big && big.error() == std::errc::message_size); /* the reply was dropped */
	auto e = a->call("b", "err", 10s);
	CHECK(!e && e.error() == std::errc::no_such_file_or_directory);
	auto thrown = a->call("b", "throw", 10s);
	CHECK(!thrown && thrown.error() == std::errc::io_error);
	auto hung = a->call("b", "hang", 100ms);
	CHECK(!hung && (hung.error() == std::errc::timed_out ||
			hung.error() == std::errc::resource_unavailable_try_again));
	auto none = a->call("nobody", "x", 1s);
	CHECK(!none && none.error() == std::errc::no_such_file_or_directory);

	/* a stream, cancelled midway: the server sees it */
	auto id = a->call_start("b", "stream", 10s);
	REQUIRE_OK(id);
	char buf[64];
	for (int i = 0; i < 5; i++) {
		bool more = false;
		auto got = a->call_wait(*id, buf, &more, 10s);
		CHECK(got && more && std::string_view(buf, *got) == std::to_string(i));
	}
	REQUIRE_OK(a->call_cancel(*id));
	auto after = a->call_wait(*id, buf, nullptr, 1s);
	CHECK(!after && after.error() == std::errc::no_such_file_or_directory);
	for (int i = 0; i < 1000 && !saw_cancel; i++)
		std::this_thread::sleep_for(10ms);
	CHECK(saw_cancel);

	/* three calls in flight, answered from another thread in reverse order */
	std::uint64_t ids[3];
	for (auto &i : ids) {
		auto s = a->call_start("b", "later", 10s);
		REQUIRE_OK(s);
		i = *s;
	}
	for (auto i : ids) {
		auto got = a->call_wait(i, buf, nullptr, 10s);
		CHECK(got && std::string_view(buf, *got) == "late" + std::to_string(i));
	}

	/* through a peer handle */
	auto p = a->peer("b", 10s);
	REQUIRE_OK(p);
	auto pr = p->call("peer", 10s);
	CHECK(pr && *pr == "reep");
	auto pn = p->call("xy", buf, 10s);
	CHECK(pn && std::string_view(buf, *pn) == "yx");

	REQUIRE_OK(b->stop_serving());
	auto off = a->call("b", "x", 10s);
	CHECK(!off && off.error() == std::errc::operation_not_supported);
	REQUIRE_OK(b->stop());
	if (later.joinable())
		later.join();
	auto st = a->stats();
	CHECK(st && st->calls >= 10);
}

/* A forked server SIGKILLed with a call pending: broken_pipe, not timed_out. */
static void test_call_server_killed()
{
	fresh_domain();
	auto p = node::open("parent", opts());
	REQUIRE_OK(p);
	pid_t pid = fork();
	if (pid == 0) {
		auto n = node::open("srv", opts());
		if (!n)
			_exit(10);
		auto s = n->serve([&](shmrpc::request &req) {
			if (req.data() == "hang") /* tell the caller, never reply */
				(void)n->send(req.from(), "got", 10s);
			else
				(void)req.reply(req.data());
		});
		if (!s || !n->send("parent", "serving", 10s)) /* serving before the first call */
			_exit(11);
		char buf[64];
		for (;;)
			(void)n->recv(buf, 10s);
	}
	char ready[16];
	auto rd = p->recv(ready, 10s);
	CHECK(rd && std::string_view(ready, rd->size) == "serving");
	auto echo = p->call("srv", "ping", 10s);
	CHECK(echo && *echo == "ping");
	std::thread killer([&p, pid] {
		char buf[16];
		auto got = p->recv(buf, 30s); /* plain messages: never a reply */
		CHECK(got && std::string_view(buf, got->size) == "got");
		kill(pid, SIGKILL);
	});
	auto start = std::chrono::steady_clock::now();
	auto r = p->call("srv", "hang", 60s);
	auto took = std::chrono::steady_clock::now() - start;
	killer.join();
	CHECK(!r && r.error() == std::errc::broken_pipe);
	CHECK(took < 30s); /* told by the kernel, not by the timeout */
	CHECK(wait_child(pid) == 128 + SIGKILL);
}

/* ------------------------------------------------------------------ peers, events, batches */

/* The next message of @n, an event: its decoded form (type 0 if not). */
static shmrpc::event next_event(node &n)
{
	char buf[sizeof(shmrpc::event)];
	auto r = n.recv(buf, 10s);
	shmrpc::event none{};
	if (!r || !shmrpc::is_event(r->from()))
		return none;
	auto ev = shmrpc::parse_event(std::string_view(buf, r->size));
	return ev ? *ev : none;
}

static void test_peer_events_batch()
{
	fresh_domain();
	shmrpc::options o = opts();
	o.events = SHMRPC_EV_JOIN | SHMRPC_EV_LEAVE | SHMRPC_EV_DEATH;
	auto p = node::open("parent", o);
	REQUIRE_OK(p);
	pid_t pid = fork_echo(*p);
	shmrpc::event j = next_event(*p);
	CHECK(j.type == SHMRPC_EV_JOIN && std::string_view(j.name) == "child" &&
	      j.pid == static_cast<std::uint32_t>(pid) && j.dropped == 0);
	CHECK(!shmrpc::parse_event("short"));

	auto h = p->peer("child", 10s);
	REQUIRE_OK(h);
	CHECK(h->alive() && std::string_view(h->name()) == "child");
	REQUIRE_OK(h->send("abc", 10s));
	std::string out;
	auto r = p->recv(out, 10s);
	REQUIRE_OK(r);
	CHECK(out == "cba" && r->from() == "child");
	/* sendv: three messages; the echoes come back, taken in batches */
	struct iovec iov[3] = { { const_cast<char *>("one"), 3 },
				{ const_cast<char *>("two"), 3 },
				{ const_cast<char *>("three"), 5 } };
	auto sent = h->sendv(iov, 10s);
	REQUIRE_OK(sent);
	CHECK(*sent == 3);
	char bufs[3][16];
	shmrpc_msg m[3];
	std::vector<std::string> got;
	while (got.size() < 3) {
		for (int i = 0; i < 3; i++)
			m[i] = shmrpc_msg{ bufs[i], sizeof(bufs[i]), 0, "" };
		auto n = p->recv_batch(m, 10s);
		REQUIRE_OK(n);
		for (int i = 0; i < *n; i++)
			got.emplace_back(bufs[i], m[i].len);
	}
	CHECK(got == (std::vector<std::string>{ "eno", "owt", "eerht" }));
	m[0] = shmrpc_msg{ bufs[0], sizeof(bufs[0]), 0, "" };
	auto none = p->recv_batch(shmrpc::span<shmrpc_msg>(m, 1), shmrpc::no_wait);
	CHECK(!none && none.error() == std::errc::resource_unavailable_try_again);
	/* zero-copy through the handle */
	if (auto tx = h->reserve(4, 10s)) {
		std::memcpy(tx->data().data(), "wxyz", 4);
		REQUIRE_OK(tx->commit());
	} else {
		CHECK(false);
	}
	REQUIRE_OK(p->recv(out, 10s));
	CHECK(out == "zyxw");

	/* the child dies: the handle fails with broken_pipe, the DEATH comes */
	kill(pid, SIGKILL);
	CHECK(wait_child(pid) == 128 + SIGKILL);
	(void)p->is_local("child"); /* the lazy check, if no watcher came first */
	shmrpc::event d = next_event(*p);
	CHECK(d.type == SHMRPC_EV_DEATH && d.id == j.id);
	CHECK(!h->alive());
	auto dead = h->send("x", 10s);
	CHECK(!dead && dead.error() == std::errc::broken_pipe);
	/* a new child of that name: the old handle still fails, a new one works */
	pid = fork_echo(*p);
	CHECK(next_event(*p).type == SHMRPC_EV_JOIN);
	dead = h->send("x", 10s);
	CHECK(!dead && dead.error() == std::errc::broken_pipe);
	auto h2 = p->peer("child", 10s);
	REQUIRE_OK(h2);
	shmrpc::peer moved = std::move(*h2);
	CHECK(!*h2 && moved.alive());
	REQUIRE_OK(moved.send("quit", 10s));
	CHECK(wait_child(pid) == 0);
	CHECK(next_event(*p).type == SHMRPC_EV_LEAVE);
	auto gone = p->peer("child", shmrpc::no_wait);
	CHECK(!gone);
	h->reset();
	CHECK(!*h && !h->alive());
}

static void test_value()
{
	fresh_domain();
	auto bad = node::open("a", opts(5000));
#if defined(__cpp_exceptions)
	bool caught = false;
	try {
		(void)bad.value();
	} catch (const std::system_error &e) {
		caught = e.code() == std::errc::invalid_argument &&
			 std::string(e.what()).find("ring_bytes") != std::string::npos;
	}
	CHECK(caught);
#else
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY); /* its message is expected */
		dup2(null, 2);
		(void)bad.value();
		_exit(0);
	}
	CHECK(wait_child(pid) == 128 + SIGABRT);
#endif
	auto ok = node::open("b", opts());
	CHECK(ok && ok.value().get() == ok->get());
}

int main()
{
	static const struct {
		const char *name;
		void (*fn)();
	} tests[] = {
		{ "timeouts", test_timeouts },
		{ "span_and_errors", test_span_and_errors },
		{ "open_close_move", test_open_close_move },
		{ "open_errors", test_open_errors },
		{ "send_recv", test_send_recv },
		{ "broadcast_flush_queries", test_broadcast_flush_queries },
		{ "broadcast_marks", test_broadcast_marks },
		{ "zero_copy", test_zero_copy },
		{ "dispatch_start", test_dispatch_start },
		{ "two_processes", test_two_processes },
		{ "peer_killed", test_peer_killed },
		{ "peer_events_batch", test_peer_events_batch },
		{ "call_serve", test_call_serve },
		{ "call_server_killed", test_call_server_killed },
		{ "value", test_value },
	};
	int failed = 0;

	std::printf("test_cpp (%s)\n",
#if defined(__cpp_exceptions)
		    "exceptions"
#else
		    "-fno-exceptions"
#endif
	);
	for (const auto &t : tests) {
		int before = failures;

		std::printf("[ RUN      ] %s\n", t.name);
		std::fflush(stdout);
		t.fn();
		for (int i = 0; i < 500 && domain[0] && shm_files(domain) != 0; i++)
			usleep(10000); /* a killed peer's files go with the watcher */
		if (domain[0] && shm_files(domain) != 0) {
			std::fprintf(stderr, "error: %s left files of %s in /dev/shm\n", t.name,
				     domain);
			failures++;
		}
		domain[0] = '\0';
		if (failures != before) {
			std::printf("[  FAILED  ] %s\n", t.name);
			failed++;
		} else {
			std::printf("[       OK ] %s\n", t.name);
		}
	}
	std::printf("%d of %zu tests failed\n", failed, sizeof(tests) / sizeof(tests[0]));
	return failed != 0;
}
