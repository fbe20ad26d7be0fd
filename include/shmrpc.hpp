/* SPDX-License-Identifier: MIT */
/*
 * shmrpc.hpp - libshmrpc for C++17, header-only, over include/shmrpc.h.
 *
 *	shmrpc::options o;
 *	o.domain = "robot";
 *	auto n = shmrpc::node::open("planner", o);
 *	if (!n)
 *		return n.error().code();        // a std::error_code; .message(): the text
 *	if (auto sent = n->send("camera", "start"); !sent)   // results are [[nodiscard]]
 *		log(sent.error().message());
 *	char buf[4096];
 *	auto r = n->recv(buf, std::chrono::milliseconds(100));
 *	if (r)
 *		use(std::string_view(buf, r->size), r->from());
 *	else if (r.error() == std::errc::timed_out)
 *		...
 *
 * - Every call returns a result<T>: a T, or a shmrpc::error carrying the
 *   errno as a std::error_code (category "shmrpc", comparable with
 *   std::errc) and the library's text for it, captured when the call
 *   failed (error::message()). Nothing here throws, so it builds with
 *   -fno-exceptions; with exceptions enabled, result::value() throws
 *   std::system_error on an error (that is the throwing layer).
 * - Timeouts are std::chrono durations, rounded up to whole milliseconds
 *   (a 100 us timeout waits 1 ms, not 0) and capped at INT_MAX ms;
 *   shmrpc::forever (the default) and shmrpc::no_wait.
 * - Buffers: std::string_view to send, shmrpc::span<char> (pointer + size)
 *   to receive into and for zero-copy space.
 * - node is move-only and closes on destruction. Thread rules are the C
 *   library's (include/shmrpc.h): sends and queries from many threads at
 *   once, receiving calls from one at a time; zero-copy guards end in the
 *   thread that made them and must not outlive their node.
 * - Handlers (dispatch, start) run inside the library: for dispatch, an
 *   exception thrown by the handler is rethrown once dispatch returns (the
 *   messages already taken are still handed to the handler first); start's
 *   handler must not throw (std::terminate, as for std::thread).
 */
#ifndef SHMRPC_HPP
#define SHMRPC_HPP

/* In C++ the function shmrpc_stats hides the struct of that name (it is
 * "struct shmrpc_stats" here, shmrpc::counters below): -Wshadow says so. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include <shmrpc.h>
#pragma GCC diagnostic pop

#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__cpp_exceptions)
#include <exception>
#endif

namespace shmrpc
{

/* ------------------------------------------------------------ errors */

/* Errno values; message() is strerror's text (an error_code has no room
 * for more: shmrpc::error::message() has the library's). */
class error_category_impl final : public std::error_category {
    public:
	const char *name() const noexcept override
	{
		return "shmrpc";
	}
	std::string message(int ev) const override
	{
		return std::generic_category().message(ev);
	}
	std::error_condition default_error_condition(int ev) const noexcept override
	{
		return std::error_condition(ev, std::generic_category());
	}
};

inline const std::error_category &category() noexcept
{
	static const error_category_impl c;
	return c;
}

/* A failed call: its errno, and the text that says what was wrong. */
class error {
    public:
	static constexpr std::size_t text_max = 256;

	error() noexcept = default;
	error(int err, const char *text) noexcept : err_(err)
	{
		std::snprintf(text_, sizeof(text_), "%s", text ? text : "");
	}
	int value() const noexcept
	{
		return err_;
	}
	std::error_code code() const noexcept
	{
		return std::error_code(err_, category());
	}
	operator std::error_code() const noexcept
	{
		return code();
	}
	/* The library's text for this failure, captured when it happened. */
	const char *message() const noexcept
	{
		return text_;
	}
	friend bool operator==(const error &e, std::errc c) noexcept
	{
		return e.code() == c;
	}
	friend bool operator!=(const error &e, std::errc c) noexcept
	{
		return !(e == c);
	}

    private:
	int err_ = 0;
	char text_[text_max] = "";
};

namespace detail
{
/*
 * shmrpc_last_error() keeps the text of this thread's last failure that
 * recorded one, and not every call records one: the text found after a
 * failure could be an older one's. So once a failure's text is taken, the
 * thread's text is set to a known one, its mark (a call that fails at once
 * and does nothing else); a failure that leaves the mark recorded nothing.
 */
inline thread_local char mark[error::text_max];

inline error fail(int rc, const char *what) noexcept
{
	const char *raw = shmrpc_last_error();
	char text[error::text_max];

	if (raw[0] && std::strcmp(raw, mark) != 0)
		std::snprintf(text, sizeof(text), "%s", raw);
	else
		std::snprintf(text, sizeof(text), "%s: %s", what,
			      std::generic_category().message(-rc).c_str());
	shmrpc_open(nullptr, nullptr, nullptr); /* -EINVAL: "out is NULL" */
	std::snprintf(mark, sizeof(mark), "%s", shmrpc_last_error());
	return error(-rc, text);
}

[[noreturn]] inline void bad_access(const error &e)
{
#if defined(__cpp_exceptions)
	throw std::system_error(e.code(), e.message());
#else
	std::fprintf(stderr, "shmrpc: value() of a failed result: %s\n", e.message());
	std::abort();
#endif
}
} // namespace detail

/* ------------------------------------------------------------ result */

/* A T or an error. [[nodiscard]]: an ignored failure is a warning. */
template <class T> class [[nodiscard]] result {
	static_assert(!std::is_reference_v<T>, "result<T&> is not supported");

    public:
	result(T v) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(true)
	{
		new (&val_) T(std::move(v));
	}
	result(shmrpc::error e) noexcept : ok_(false), err_(e)
	{
	}
	result(result &&o) noexcept(std::is_nothrow_move_constructible_v<T>)
		: ok_(o.ok_), err_(o.err_)
	{
		if (ok_)
			new (&val_) T(std::move(o.val_));
	}
	result &operator=(result &&o) noexcept(std::is_nothrow_move_constructible_v<T>)
	{
		if (this != &o) {
			this->~result();
			new (this) result(std::move(o));
		}
		return *this;
	}
	/* Copies: only used (so only compiled) for a copyable T. */
	result(const result &o) : ok_(o.ok_), err_(o.err_)
	{
		if (ok_)
			new (&val_) T(o.val_);
	}
	result &operator=(const result &o)
	{
		if (this != &o) {
			this->~result();
			new (this) result(o);
		}
		return *this;
	}
	~result()
	{
		if (ok_)
			val_.~T();
	}

	bool has_value() const noexcept
	{
		return ok_;
	}
	explicit operator bool() const noexcept
	{
		return ok_;
	}
	/* Unchecked: only when has_value(). */
	T &operator*() & noexcept
	{
		return val_;
	}
	const T &operator*() const & noexcept
	{
		return val_;
	}
	T &&operator*() && noexcept
	{
		return std::move(val_);
	}
	T *operator->() noexcept
	{
		return &val_;
	}
	const T *operator->() const noexcept
	{
		return &val_;
	}
	/* Checked: throws std::system_error (or aborts without exceptions). */
	T &value() &
	{
		if (!ok_)
			detail::bad_access(err_);
		return val_;
	}
	T &&value() &&
	{
		if (!ok_)
			detail::bad_access(err_);
		return std::move(val_);
	}
	T value_or(T other) const &
	{
		return ok_ ? val_ : other;
	}
	/* The error; an empty one (value() 0) when has_value(). */
	const shmrpc::error &error() const noexcept
	{
		return err_;
	}

    private:
	bool ok_;
	union {
		T val_;
	};
	shmrpc::error err_;
};

template <> class [[nodiscard]] result<void> {
    public:
	result() noexcept = default;
	result(shmrpc::error e) noexcept : ok_(false), err_(e)
	{
	}
	bool has_value() const noexcept
	{
		return ok_;
	}
	explicit operator bool() const noexcept
	{
		return ok_;
	}
	void value() const
	{
		if (!ok_)
			detail::bad_access(err_);
	}
	const shmrpc::error &error() const noexcept
	{
		return err_;
	}

    private:
	bool ok_ = true;
	shmrpc::error err_;
};

/* ------------------------------------------------------------ time, buffers */

/* A timeout: forever (default-constructed), or a duration rounded up to
 * whole milliseconds; zero, negative or NaN: never block. */
class timeout {
    public:
	constexpr timeout() noexcept = default;
	template <class Rep, class Period>
	constexpr timeout(std::chrono::duration<Rep, Period> d) noexcept : ms_(to_ms(d))
	{
	}
	/* The C value as it is: -1 forever, 0 never block, > 0 milliseconds. */
	static constexpr timeout from_ms(int ms) noexcept
	{
		timeout t;
		t.ms_ = ms < -1 ? -1 : ms;
		return t;
	}
	constexpr int ms() const noexcept
	{
		return ms_;
	}

    private:
	template <class Rep, class Period>
	static constexpr int to_ms(std::chrono::duration<Rep, Period> d) noexcept
	{
		/* in long double first: no overflow whatever the duration's type */
		long double ms = static_cast<long double>(d.count()) *
				 static_cast<long double>(Period::num) * 1000.0L /
				 static_cast<long double>(Period::den);

		if (!(ms > 0))
			return 0;
		if (ms >= static_cast<long double>(INT_MAX))
			return INT_MAX;
		if constexpr (std::is_floating_point_v<Rep>) {
			long long whole = static_cast<long long>(ms);
			return static_cast<int>(whole + (static_cast<long double>(whole) < ms));
		} else {
			return static_cast<int>(
				std::chrono::ceil<std::chrono::duration<long long, std::milli>>(d)
					.count());
		}
	}
	int ms_ = -1;
};

inline constexpr timeout forever{};
inline constexpr timeout no_wait = timeout::from_ms(0);

/* A view of contiguous T: std::span's few calls this binding needs. */
template <class T> class span {
    public:
	constexpr span() noexcept = default;
	constexpr span(T *p, std::size_t n) noexcept : p_(p), n_(n)
	{
	}
	template <std::size_t N> constexpr span(T (&a)[N]) noexcept : p_(a), n_(N)
	{
	}
	template <class C, class = std::enable_if_t<std::is_convertible_v<
				   decltype(std::declval<C &>().data()), T *>>>
	constexpr span(C &c) noexcept : p_(c.data()), n_(c.size())
	{
	}
	constexpr T *data() const noexcept
	{
		return p_;
	}
	constexpr std::size_t size() const noexcept
	{
		return n_;
	}
	constexpr bool empty() const noexcept
	{
		return n_ == 0;
	}
	constexpr T *begin() const noexcept
	{
		return p_;
	}
	constexpr T *end() const noexcept
	{
		return p_ + n_;
	}
	constexpr T &operator[](std::size_t i) const noexcept
	{
		return p_[i];
	}
	constexpr span first(std::size_t n) const noexcept
	{
		return span(p_, n < n_ ? n : n_);
	}
	constexpr span subspan(std::size_t off, std::size_t n = SIZE_MAX) const noexcept
	{
		off = off < n_ ? off : n_;
		return span(p_ + off, n < n_ - off ? n : n_ - off);
	}

    private:
	T *p_ = nullptr;
	std::size_t n_ = 0;
};

namespace detail
{
/* A name as C wants it: NUL-terminated, checked for what a NUL would hide. */
class cname {
    public:
	explicit cname(std::string_view s) noexcept
	{
		if (s.size() > SHMRPC_NAME_MAX)
			err_ = error(ENAMETOOLONG, "name longer than SHMRPC_NAME_MAX (63)");
		else if (s.find('\0') != std::string_view::npos)
			err_ = error(EINVAL, "name with a NUL character");
		else if (!s.empty()) /* an empty view's data() may be null */
			std::memcpy(buf_, s.data(), s.size());
	}
	const char *c_str() const noexcept
	{
		return buf_;
	}
	const error &err() const noexcept
	{
		return err_;
	}
	explicit operator bool() const noexcept
	{
		return err_.value() == 0;
	}

    private:
	char buf_[SHMRPC_NAME_MAX + 1] = "";
	error err_;
};

inline result<int> check(int rc, const char *what) noexcept
{
	if (rc < 0)
		return fail(rc, what);
	return rc;
}

inline result<void> check_void(int rc, const char *what) noexcept
{
	if (rc < 0)
		return fail(rc, what);
	return {};
}
} // namespace detail

/* ------------------------------------------------------------ zero-copy */

/* Space reserved in a ring (node::reserve): write data(), then commit; the
 * destructor cancels what was not committed. */
class tx_guard {
    public:
	tx_guard() noexcept = default;
	tx_guard(shmrpc_node *n, const shmrpc_txbuf &tx) noexcept : n_(n), tx_(tx)
	{
	}
	tx_guard(tx_guard &&o) noexcept : n_(std::exchange(o.n_, nullptr)), tx_(o.tx_)
	{
	}
	tx_guard &operator=(tx_guard &&o) noexcept
	{
		if (this != &o) {
			cancel();
			n_ = std::exchange(o.n_, nullptr);
			tx_ = o.tx_;
		}
		return *this;
	}
	~tx_guard()
	{
		cancel();
	}
	/* Where to write; empty once the reservation ended. */
	span<char> data() const noexcept
	{
		return n_ ? span<char>(static_cast<char *>(tx_.data), tx_.cap) : span<char>();
	}
	explicit operator bool() const noexcept
	{
		return n_ != nullptr;
	}
	/* Publish the first len bytes (all of them by default) as one message;
	 * flags: SHMRPC_SEND_DEFER. Ends the reservation, even on an error. */
	result<void> commit(std::size_t len = SIZE_MAX, unsigned flags = 0) noexcept
	{
		if (!n_)
			return error(EINVAL, "commit: no reservation");
		if (len == SIZE_MAX)
			len = tx_.cap;
		if (len > tx_.cap)
			return error(EINVAL, "commit: longer than reserved");
		int rc = shmrpc_commit_flags(std::exchange(n_, nullptr), &tx_, len, flags);
		return detail::check_void(rc, "commit");
	}
	/* Drop the reservation; nothing is sent. */
	void cancel() noexcept
	{
		if (n_)
			shmrpc_cancel(std::exchange(n_, nullptr), &tx_);
	}

    private:
	shmrpc_node *n_ = nullptr;
	shmrpc_txbuf tx_{};
};

/* A message looked at in place (node::peek): valid until release(), which
 * the destructor does. The sender could still write to it: validate what
 * you read (or copy it). */
class rx_guard {
    public:
	rx_guard() noexcept = default;
	rx_guard(shmrpc_node *n, const shmrpc_rxbuf &rx) noexcept : n_(n), rx_(rx)
	{
	}
	rx_guard(rx_guard &&o) noexcept : n_(std::exchange(o.n_, nullptr)), rx_(o.rx_)
	{
	}
	rx_guard &operator=(rx_guard &&o) noexcept
	{
		if (this != &o) {
			(void)release();
			n_ = std::exchange(o.n_, nullptr);
			rx_ = o.rx_;
		}
		return *this;
	}
	~rx_guard()
	{
		(void)release();
	}
	std::string_view data() const noexcept
	{
		return n_ ? std::string_view(static_cast<const char *>(rx_.data), rx_.len)
			  : std::string_view();
	}
	std::string_view from() const noexcept
	{
		return n_ ? std::string_view(rx_.from) : std::string_view();
	}
	std::size_t size() const noexcept
	{
		return n_ ? rx_.len : 0;
	}
	explicit operator bool() const noexcept
	{
		return n_ != nullptr;
	}
	/* Consume the message; data() is empty afterwards. */
	result<void> release() noexcept
	{
		if (!n_)
			return {};
		return detail::check_void(shmrpc_release(std::exchange(n_, nullptr), &rx_),
					  "release");
	}

    private:
	shmrpc_node *n_ = nullptr;
	shmrpc_rxbuf rx_{};
};

/* ------------------------------------------------------------ peers, events */

/* A membership event (a node opened with options::events receives them as
 * messages whose sender is SHMRPC_EVENT_FROM): type (SHMRPC_EV_JOIN,
 * _LEAVE, _DEATH), pid, id (slot << 32 | generation), name, dropped (events
 * lost just before this one). */
using event = struct ::shmrpc_event;

/* Whether a message came from the library's event source. */
inline bool is_event(std::string_view from) noexcept
{
	return from == SHMRPC_EVENT_FROM;
}

/* The event that a message from SHMRPC_EVENT_FROM carries
 * (std::errc::invalid_argument if data is not one). */
inline result<event> parse_event(std::string_view data) noexcept
{
	event ev{};
	if (data.size() != sizeof(ev))
		return error(EINVAL, "parse_event: not the size of struct shmrpc_event");
	std::memcpy(&ev, data.data(), sizeof(ev));
	ev.name[SHMRPC_NAME_MAX] = '\0';
	return ev;
}

/* ------------------------------------------------------------ request/response */

/* A request, as node::serve's function sees it. A copy of it may be kept to
 * reply later, from any thread, in any order (the C struct is copied, as
 * shmrpc.h allows); data() is valid only until the serve function returns
 * (it points into the shared ring, which the caller could still write:
 * validate it, or copy it). Replying needs the node open. */
class request {
    public:
	request(shmrpc_node *n, const shmrpc_req &r) noexcept : n_(n), r_(r)
	{
	}
	std::string_view data() const noexcept
	{
		return std::string_view(static_cast<const char *>(r_.data), r_.len);
	}
	std::string_view from() const noexcept
	{
		return r_.from;
	}
	std::uint64_t id() const noexcept
	{
		return r_.id;
	}
	/* CLOCK_MONOTONIC nanoseconds; 0: the caller waits forever. */
	std::int64_t deadline_ns() const noexcept
	{
		return r_.deadline_ns;
	}
	const shmrpc_req &get() const noexcept
	{
		return r_;
	}
	/* One reply; more: more follow (a stream), the last one without.
	 * nowait: EAGAIN at once when the caller's reply ring is full (the
	 * request stays open), instead of waiting for room. */
	result<void> reply(std::string_view data, bool more = false, bool nowait = false) noexcept
	{
		return detail::check_void(shmrpc_reply(n_, &r_, data.data(), data.size(),
						       (more ? SHMRPC_REPLY_MORE : 0u) |
							       (nowait ? SHMRPC_REPLY_NOWAIT : 0u)),
					  "reply");
	}
	/* End the request with errno @err (> 0): the caller's call fails with it. */
	result<void> reply_error(int err) noexcept
	{
		if (err <= 0)
			return error(EINVAL, "reply_error: err must be a positive errno");
		return detail::check_void(shmrpc_reply_error(n_, &r_, -err), "reply_error");
	}
	result<void> reply_error(std::errc e) noexcept
	{
		return reply_error(static_cast<int>(e));
	}
	/* The caller no longer wants replies (cancelled, deadline passed, gone,
	 * or the request is over): a streaming server asks between replies. */
	bool cancelled() const noexcept
	{
		return shmrpc_req_cancelled(n_, &r_) != 0;
	}

    private:
	shmrpc_node *n_;
	shmrpc_req r_;
};

namespace detail
{
/* The buffer of the calls that return a std::string: one per thread, as
 * large as the largest reply seen possible (@cap). */
inline char *call_buf(std::size_t cap)
{
	thread_local std::vector<char> buf;
	if (buf.size() < cap)
		buf.resize(cap);
	return buf.data();
}

/* A call's reply into a std::string. */
template <class Call> result<std::string> call_string(std::size_t cap, Call c)
{
	char *buf = call_buf(cap);
	int rc = c(buf, cap);
	if (rc < 0)
		return fail(rc, "call");
	return std::string(buf, static_cast<std::size_t>(rc));
}
} // namespace detail

/* One incarnation of a named node, connected (node::peer): sends skip the
 * name lookup; once that node left or died every call fails with
 * std::errc::broken_pipe, even after a node of that name joined again.
 * Move-only; shmrpc_peer_put when destroyed (after any reservation made
 * through it ended). Used from many threads like a node's sends; it may
 * outlive its node (every call then fails with broken_pipe). */
class peer {
    public:
	peer() noexcept = default;
	/* Adopt a handle from shmrpc_peer_get of node @n. */
	peer(shmrpc_node *n, shmrpc_peer *p) noexcept : n_(n), p_(p)
	{
		int m = n ? shmrpc_max_size(n, nullptr) : -1;
		cap_ = m > 0 ? static_cast<std::size_t>(m) : 0;
	}
	peer(peer &&o) noexcept
		: n_(std::exchange(o.n_, nullptr)), p_(std::exchange(o.p_, nullptr)),
		  cap_(o.cap_)
	{
	}
	peer &operator=(peer &&o) noexcept
	{
		if (this != &o) {
			reset();
			n_ = std::exchange(o.n_, nullptr);
			p_ = std::exchange(o.p_, nullptr);
			cap_ = o.cap_;
		}
		return *this;
	}
	peer(const peer &) = delete;
	peer &operator=(const peer &) = delete;
	~peer()
	{
		reset();
	}
	/* End the handle; idempotent. */
	void reset() noexcept
	{
		shmrpc_peer_put(std::exchange(p_, nullptr));
		n_ = nullptr;
	}
	shmrpc_peer *get() const noexcept
	{
		return p_;
	}
	explicit operator bool() const noexcept
	{
		return p_ != nullptr;
	}
	/* Live as far as the domain knows (false for an empty handle). */
	bool alive() const noexcept
	{
		return p_ && shmrpc_peer_alive(p_) == 1;
	}
	const char *name() const noexcept
	{
		return p_ ? shmrpc_peer_name(p_) : "";
	}
	/* flags: SHMRPC_SEND_DEFER or 0. */
	result<void> send(std::string_view data, timeout t = forever, unsigned flags = 0) noexcept
	{
		if (!p_)
			return error(EINVAL, "peer send: empty handle");
		int rc = shmrpc_peer_send(p_, data.data(), data.size(), t.ms(), flags);
		return detail::check_void(rc, "peer send");
	}
	/* msgs in order, one message each, at most one wake: how many went
	 * (>= 1; fewer when the ring filled up after the first). */
	result<int> sendv(span<const struct iovec> msgs, timeout t = forever,
			  unsigned flags = 0) noexcept
	{
		if (!p_)
			return error(EINVAL, "peer sendv: empty handle");
		if (msgs.size() > UINT_MAX)
			return error(EINVAL, "peer sendv: more than UINT_MAX messages");
		int rc = shmrpc_peer_sendv(p_, msgs.data(), static_cast<unsigned>(msgs.size()),
					   t.ms(), flags);
		return detail::check(rc, "peer sendv");
	}
	/* Zero-copy: len bytes in the incarnation's ring. */
	result<tx_guard> reserve(std::size_t len, timeout t = forever) noexcept
	{
		if (!p_)
			return error(EINVAL, "peer reserve: empty handle");
		shmrpc_txbuf tx{};
		int rc = shmrpc_peer_reserve(p_, len, &tx, t.ms());
		if (rc < 0)
			return detail::fail(rc, "peer reserve");
		return tx_guard(n_, tx);
	}
	/* node::call to this incarnation: std::errc::broken_pipe (never
	 * no_such_file_or_directory) once it left or died, or the node closed. */
	result<std::size_t> call(std::string_view req, span<char> resp,
				 timeout t = forever) noexcept
	{
		if (!p_)
			return error(EINVAL, "peer call: empty handle");
		int rc = shmrpc_peer_call(p_, req.data(), req.size(), resp.data(), resp.size(),
					  t.ms());
		if (rc < 0)
			return detail::fail(rc, "peer call");
		return static_cast<std::size_t>(rc);
	}
	/* The reply as a string (a buffer for the largest reply possible). */
	result<std::string> call(std::string_view req, timeout t = forever)
	{
		if (!p_)
			return error(EINVAL, "peer call: empty handle");
		return detail::call_string(cap_, [&](char *buf, std::size_t cap) {
			return shmrpc_peer_call(p_, req.data(), req.size(), buf, cap, t.ms());
		});
	}
	/* shmrpc_peer_call_start: the call's id, for the node's call_wait. */
	result<std::uint64_t> call_start(std::string_view req, timeout t = forever) noexcept
	{
		if (!p_)
			return error(EINVAL, "peer call_start: empty handle");
		std::uint64_t id = 0;
		int rc = shmrpc_peer_call_start(p_, req.data(), req.size(), t.ms(), &id);
		if (rc < 0)
			return detail::fail(rc, "peer call_start");
		return id;
	}

    private:
	shmrpc_node *n_ = nullptr; /* for the reservations' commit and cancel */
	shmrpc_peer *p_ = nullptr;
	std::size_t cap_ = 0; /* the largest reply its node can get */
};

/* ------------------------------------------------------------ node */

/* shmrpc_stats: a node's counters since it joined. */
using counters = struct ::shmrpc_stats;

/* What node::recv received into the caller's buffer. */
struct received {
	std::size_t size = 0;
	char sender[SHMRPC_NAME_MAX + 1] = "";

	std::string_view from() const noexcept
	{
		return sender;
	}
};

/* shmrpc_opts; empty / zero fields take the library's defaults. */
struct options {
	std::string_view domain;  /* empty: $SHMRPC_DOMAIN, else "default" */
	std::uint32_t ring_bytes = 0; /* of rings delivering to this node; 0: 256 KiB */
	std::uint32_t max_nodes = 0;  /* registry capacity if this creates it; 0: 1024 */
	std::uint32_t mode = 0;	      /* of created segments; 0: 0600 */
	std::string_view backend; /* "uring", "futex"; empty: automatic */
	std::int32_t spin_us = 0; /* 0: $SHMRPC_SPIN_US else 20; SHMRPC_SPIN_NEVER */
	std::uint32_t events = 0; /* SHMRPC_EV_* bits received as messages; 0: none */
	std::uint32_t max_calls = 0; /* calls in flight, requests in progress; 0: 1024 */
	std::uint32_t flags = 0; /* SHMRPC_OPEN_* bits (SHMRPC_OPEN_BCAST_MARKS) */
};

namespace detail
{
template <class F> struct handler_ctx {
	F *fn;
#if defined(__cpp_exceptions)
	std::exception_ptr exc; /* the first one fn threw */
#endif

	explicit handler_ctx(F *f) noexcept : fn(f)
	{
	}

	static void call(shmrpc_node *, const char *from, const void *data, std::size_t len,
			 void *arg) noexcept
	{
		auto *c = static_cast<handler_ctx *>(arg);
#if defined(__cpp_exceptions)
		try {
			(*c->fn)(std::string_view(from),
				 std::string_view(static_cast<const char *>(data), len));
		} catch (...) {
			if (!c->exc)
				c->exc = std::current_exception();
		}
#else
		(*c->fn)(std::string_view(from),
			 std::string_view(static_cast<const char *>(data), len));
#endif
	}
};

/* shmrpc_start's handler, owned by the node while the thread may run. */
struct bg_handler {
	virtual ~bg_handler() = default;
};

template <class F> struct bg_handler_of final : bg_handler {
	F fn;
	explicit bg_handler_of(F f) : fn(std::move(f))
	{
	}
	static void call(shmrpc_node *, const char *from, const void *data, std::size_t len,
			 void *arg) noexcept /* an exception escaping: std::terminate */
	{
		static_cast<bg_handler_of *>(arg)->fn(
			std::string_view(from),
			std::string_view(static_cast<const char *>(data), len));
	}
};
/* node::serve's function, owned by the node while it may run. */
struct serve_handler {
	virtual ~serve_handler() = default;
};

template <class F> struct serve_handler_of final : serve_handler {
	F fn;
	explicit serve_handler_of(F f) : fn(std::move(f))
	{
	}
	static void call(shmrpc_node *n, const shmrpc_req *r, void *arg) noexcept
	{
		request req(n, *r);
#if defined(__cpp_exceptions)
		try {
			static_cast<serve_handler_of *>(arg)->fn(req);
		} catch (...) {
			/* nothing may unwind through the C frames: the caller
			 * gets EIO (or nothing, if fn had replied already) */
			(void)req.reply_error(EIO);
		}
#else
		static_cast<serve_handler_of *>(arg)->fn(req);
#endif
	}
};
} // namespace detail

/* One process's membership of a domain. Move-only; closes when destroyed. */
class node {
    public:
	node() noexcept = default;
	/* Adopt a handle from shmrpc_open. */
	explicit node(shmrpc_node *h) noexcept : h_(h)
	{
	}
	node(node &&o) noexcept
		: h_(std::exchange(o.h_, nullptr)), bg_(std::move(o.bg_)), srv_(std::move(o.srv_)),
		  srv_old_(std::move(o.srv_old_))
	{
	}
	node &operator=(node &&o) noexcept
	{
		if (this != &o) {
			close();
			h_ = std::exchange(o.h_, nullptr);
			bg_ = std::move(o.bg_);
			srv_ = std::move(o.srv_);
			srv_old_ = std::move(o.srv_old_);
		}
		return *this;
	}
	node(const node &) = delete;
	node &operator=(const node &) = delete;
	~node()
	{
		close();
	}

	static result<node> open(std::string_view name, const options &o = {}) noexcept
	{
		detail::cname cn(name), dom(o.domain), be(o.backend);
		for (const detail::cname *c : { &cn, &dom, &be })
			if (!*c)
				return c->err();
		shmrpc_opts opts{};
		opts.sz = sizeof(opts);
		opts.domain = o.domain.empty() ? nullptr : dom.c_str();
		opts.ring_bytes = o.ring_bytes;
		opts.max_nodes = o.max_nodes;
		opts.mode = o.mode;
		opts.backend = o.backend.empty() ? nullptr : be.c_str();
		opts.spin_us = o.spin_us;
		opts.events = o.events;
		opts.max_calls = o.max_calls;
		opts.flags = o.flags;
		shmrpc_node *h = nullptr;
		int rc = shmrpc_open(cn.c_str(), &opts, &h);
		if (rc < 0)
			return detail::fail(rc, "open");
		return node(h);
	}

	/* Leave the domain (stops start()'s thread first); idempotent. No
	 * other call on the node may run meanwhile. */
	void close() noexcept
	{
		shmrpc_close(std::exchange(h_, nullptr));
		bg_.reset();
		srv_.reset();
		srv_old_.reset();
	}
	shmrpc_node *get() const noexcept
	{
		return h_;
	}
	explicit operator bool() const noexcept
	{
		return h_ != nullptr;
	}

	/* -------------------------------------------------------- sending */

	/* flags: SHMRPC_SEND_DEFER (see flush()). */
	result<void> send(std::string_view to, std::string_view data, timeout t = forever,
			  unsigned flags = 0) noexcept
	{
		return send(to, data.data(), data.size(), t, flags);
	}
	result<void> send(std::string_view to, const void *data, std::size_t len,
			  timeout t = forever, unsigned flags = 0) noexcept
	{
		detail::cname cto(to);
		if (!cto)
			return cto.err();
		int rc = shmrpc_send_flags(h_, cto.c_str(), data, len, t.ms(), flags);
		return detail::check_void(rc, "send");
	}
	/* Issue the wakes held back by SHMRPC_SEND_DEFER; how many. */
	result<int> flush() noexcept
	{
		return detail::check(shmrpc_flush(h_), "flush");
	}
	/* To every other live node; how many got it. */
	result<int> broadcast(std::string_view data, timeout t = forever) noexcept
	{
		return detail::check(shmrpc_broadcast(h_, data.data(), data.size(), t.ms()),
				     "broadcast");
	}
	/* Zero-copy: len bytes in @to's ring. */
	result<tx_guard> reserve(std::string_view to, std::size_t len,
				 timeout t = forever) noexcept
	{
		detail::cname cto(to);
		if (!cto)
			return cto.err();
		shmrpc_txbuf tx{};
		int rc = shmrpc_reserve(h_, cto.c_str(), len, &tx, t.ms());
		if (rc < 0)
			return detail::fail(rc, "reserve");
		return tx_guard(h_, tx);
	}

	/* ------------------------------------------------------ receiving */

	/* One message into buf (std::errc::message_size when it does not fit:
	 * it stays queued). */
	result<received> recv(span<char> buf, timeout t = forever) noexcept
	{
		received r;
		int rc = shmrpc_recv(h_, buf.data(), buf.size(), r.sender, t.ms());
		if (rc < 0)
			return detail::fail(rc, "recv");
		r.size = static_cast<std::size_t>(rc);
		return r;
	}
	/* One message of any length into out (resized to it): copied once,
	 * from the ring (peek, assign, release). */
	result<received> recv(std::string &out, timeout t = forever)
	{
		auto p = peek(t);
		if (!p)
			return p.error();
		received r;
		r.size = p->size();
		std::snprintf(r.sender, sizeof(r.sender), "%s", p->from().data());
		out.assign(p->data());
		if (auto rel = p->release(); !rel)
			return rel.error();
		return r;
	}
	/* The first message as recv waits for it, then those already
	 * waiting, up to msgs.size(), each copied into msgs[i].buf (cap bytes;
	 * len and from set): how many. One longer than its cap ends the batch
	 * before it (std::errc::message_size if it is the first: it stays
	 * queued). */
	result<int> recv_batch(span<shmrpc_msg> msgs, timeout t = forever) noexcept
	{
		if (msgs.size() > UINT_MAX)
			return error(EINVAL, "recv_batch: more than UINT_MAX messages");
		int rc = shmrpc_recv_batch(h_, msgs.data(), static_cast<unsigned>(msgs.size()),
					   t.ms());
		return detail::check(rc, "recv_batch");
	}
	/* recv_batch, also filling marks[i] for each message (marks.size()
	 * at least msgs.size(), else std::errc::invalid_argument): a marked
	 * broadcast copy (marks[i].bcast != 0, on a node opened with
	 * SHMRPC_OPEN_BCAST_MARKS) ends the batch. */
	result<int> recv_batch_marks(span<shmrpc_msg> msgs, span<shmrpc_mark> marks,
				     timeout t = forever) noexcept
	{
		if (msgs.size() > UINT_MAX)
			return error(EINVAL, "recv_batch_marks: more than UINT_MAX messages");
		if (marks.size() < msgs.size())
			return error(EINVAL, "recv_batch_marks: fewer marks than messages");
		int rc = shmrpc_recv_batch_marks(h_, msgs.data(), marks.data(),
						 static_cast<unsigned>(msgs.size()), t.ms());
		return detail::check(rc, "recv_batch_marks");
	}
	/* Zero-copy: the next message, in place. */
	result<rx_guard> peek(timeout t = forever) noexcept
	{
		shmrpc_rxbuf rx{};
		int rc = shmrpc_peek(h_, &rx, t.ms());
		if (rc < 0)
			return detail::fail(rc, "peek");
		return rx_guard(h_, rx);
	}
	/* Wait for the first message, then call fn(from, data) for it and
	 * every one already waiting; how many. fn may send, not receive. */
	template <class F> result<int> dispatch(F &&fn, timeout t = forever)
	{
		using Fn = std::remove_reference_t<F>;
		detail::handler_ctx<Fn> ctx(&fn);
		int rc = shmrpc_dispatch(h_, &detail::handler_ctx<Fn>::call, &ctx, t.ms());
#if defined(__cpp_exceptions)
		if (ctx.exc)
			std::rethrow_exception(ctx.exc);
#endif
		return detail::check(rc, "dispatch");
	}
	/* A library thread calling fn(from, data) for every message until
	 * stop() or close(); fn must not throw nor close the node. */
	template <class F> result<void> start(F fn)
	{
		using H = detail::bg_handler_of<F>;
		auto h = std::unique_ptr<H>(new (std::nothrow) H(std::move(fn)));
		if (!h)
			return error(ENOMEM, "start: no memory for the handler");
		int rc = shmrpc_start(h_, &H::call, h.get());
		if (rc < 0)
			return detail::fail(rc, "start");
		bg_ = std::move(h);
		return {};
	}
	result<void> stop() noexcept
	{
		int rc = shmrpc_stop(h_);
		if (rc < 0)
			return detail::fail(rc, "stop");
		bg_.reset();
		return {};
	}
	/* An eventfd, readable when messages may be waiting (shmrpc_fd): add
	 * it to epoll and dispatch(fn, no_wait) when it fires. -errno on
	 * failure. Owned by the node. */
	int fd() noexcept
	{
		int rc = shmrpc_fd(h_);
		if (rc < 0)
			(void)detail::fail(rc, "fd"); /* the thread's text, as usual */
		return rc;
	}

	/* ------------------------------------------------ request/response */

	/* Send request @req to node @to and wait for its first reply, copied
	 * into @resp: its length. The timeout covers the whole call and
	 * travels as its deadline. Errors (shmrpc_call): std::errc::
	 * no_such_file_or_directory (no live node of that name),
	 * operation_not_supported (it does not serve), timed_out /
	 * resource_unavailable_try_again, broken_pipe (the server left or died
	 * before replying: the request may or may not have run), message_size
	 * (request too large, or the reply longer than resp: dropped),
	 * operation_canceled, device_or_resource_busy, or the errno the server
	 * replied with. */
	result<std::size_t> call(std::string_view to, std::string_view req, span<char> resp,
				 timeout t = forever) noexcept
	{
		detail::cname cto(to);
		if (!cto)
			return cto.err();
		int rc = shmrpc_call(h_, cto.c_str(), req.data(), req.size(), resp.data(),
				     resp.size(), t.ms());
		if (rc < 0)
			return detail::fail(rc, "call");
		return static_cast<std::size_t>(rc);
	}
	/* The reply as a string (read into a per-thread buffer as large as the
	 * largest reply this node can get). */
	result<std::string> call(std::string_view to, std::string_view req, timeout t = forever)
	{
		detail::cname cto(to);
		if (!cto)
			return cto.err();
		auto cap = max_size();
		if (!cap)
			return cap.error();
		return detail::call_string(*cap, [&](char *buf, std::size_t n) {
			return shmrpc_call(h_, cto.c_str(), req.data(), req.size(), buf, n, t.ms());
		});
	}
	/* shmrpc_call_start: send, return the call's id at once. */
	result<std::uint64_t> call_start(std::string_view to, std::string_view req,
					 timeout t = forever) noexcept
	{
		detail::cname cto(to);
		if (!cto)
			return cto.err();
		std::uint64_t id = 0;
		int rc = shmrpc_call_start(h_, cto.c_str(), req.data(), req.size(), t.ms(), &id);
		if (rc < 0)
			return detail::fail(rc, "call_start");
		return id;
	}
	/* shmrpc_call_wait: the next reply of call @id into @resp, its length;
	 * *more (may be null) says whether more follow. */
	result<std::size_t> call_wait(std::uint64_t id, span<char> resp, bool *more = nullptr,
				      timeout t = forever) noexcept
	{
		unsigned flags = 0;
		int rc = shmrpc_call_wait(h_, id, resp.data(), resp.size(), &flags, t.ms());
		if (more)
			*more = flags & SHMRPC_REPLY_MORE;
		if (rc < 0)
			return detail::fail(rc, "call_wait");
		return static_cast<std::size_t>(rc);
	}
	result<void> call_cancel(std::uint64_t id) noexcept
	{
		return detail::check_void(shmrpc_call_cancel(h_, id), "call_cancel");
	}
	/* Handle requests with fn(shmrpc::request &) from now on, in whichever
	 * receiving call runs (recv, dispatch, start()'s thread...). fn replies
	 * (req.reply, req.reply_error), or keeps a copy of req and replies
	 * later. An exception escaping fn answers EIO. The function replaced
	 * is kept until the next serve() or close(), so serve() may be called
	 * from inside fn. */
	template <class F> result<void> serve(F fn)
	{
		using H = detail::serve_handler_of<F>;
		auto h = std::unique_ptr<H>(new (std::nothrow) H(std::move(fn)));
		if (!h)
			return error(ENOMEM, "serve: no memory for the function");
		int rc = shmrpc_serve(h_, &H::call, h.get());
		if (rc < 0)
			return detail::fail(rc, "serve");
		srv_old_ = std::move(srv_);
		srv_ = std::move(h);
		return {};
	}
	/* Serve no more (callers get operation_not_supported). */
	result<void> stop_serving() noexcept
	{
		int rc = shmrpc_serve(h_, nullptr, nullptr);
		if (rc < 0)
			return detail::fail(rc, "serve");
		srv_old_ = std::move(srv_);
		return {};
	}

	/* ---------------------------------------------------------- peers */

	/* A handle to the node now named @name, waiting for it to join as
	 * wait_node does. */
	result<shmrpc::peer> peer(std::string_view name, timeout t = forever) noexcept
	{
		detail::cname cn(name);
		if (!cn)
			return cn.err();
		shmrpc_peer *p = nullptr;
		int rc = shmrpc_peer_get(h_, cn.c_str(), t.ms(), &p);
		if (rc < 0)
			return detail::fail(rc, "peer");
		return shmrpc::peer(h_, p);
	}

	/* -------------------------------------------------------- queries */

	result<void> wait_node(std::string_view name, timeout t = forever) noexcept
	{
		detail::cname cn(name);
		if (!cn)
			return cn.err();
		return detail::check_void(shmrpc_wait_node(h_, cn.c_str(), t.ms()), "wait_node");
	}
	result<std::vector<std::string>> nodes()
	{
		std::vector<std::array<char, SHMRPC_NAME_MAX + 1>> names(64);
		for (;;) {
			int rc = shmrpc_nodes(
				h_, reinterpret_cast<char(*)[SHMRPC_NAME_MAX + 1]>(names.data()),
				names.size());
			if (rc < 0)
				return detail::fail(rc, "nodes");
			if (static_cast<std::size_t>(rc) <= names.size()) {
				std::vector<std::string> out;
				for (int i = 0; i < rc; i++)
					out.emplace_back(names[static_cast<std::size_t>(i)].data());
				return out;
			}
			names.resize(static_cast<std::size_t>(rc) + 16);
		}
	}
	result<bool> is_local(std::string_view name) noexcept
	{
		detail::cname cn(name);
		if (!cn)
			return cn.err();
		int rc = shmrpc_is_local(h_, cn.c_str());
		if (rc < 0)
			return detail::fail(rc, "is_local");
		return rc == 1;
	}
	/* Largest message this node can receive. */
	result<std::size_t> max_size() noexcept
	{
		return size_of(shmrpc_max_size(h_, nullptr));
	}
	/* Largest message node @to can receive. */
	result<std::size_t> max_size(std::string_view to) noexcept
	{
		detail::cname cto(to);
		if (!cto)
			return cto.err();
		return size_of(shmrpc_max_size(h_, cto.c_str()));
	}
	/* Connect to every other live node now; the connections open. */
	result<int> warmup() noexcept
	{
		return detail::check(shmrpc_warmup(h_), "warmup");
	}
	result<counters> stats() noexcept
	{
		counters st{};
		int rc = shmrpc_stats(h_, &st);
		if (rc < 0)
			return detail::fail(rc, "stats");
		return st;
	}
	/* "" for an empty (closed, moved-from) node, as below. */
	const char *name() const noexcept
	{
		return h_ ? shmrpc_name(h_) : "";
	}
	const char *domain() const noexcept
	{
		return h_ ? shmrpc_domain(h_) : "";
	}
	/* "uring" or "futex". */
	const char *backend() const noexcept
	{
		return h_ ? shmrpc_backend(h_) : "";
	}

    private:
	static result<std::size_t> size_of(int rc) noexcept
	{
		if (rc < 0)
			return detail::fail(rc, "max_size");
		return static_cast<std::size_t>(rc);
	}

	shmrpc_node *h_ = nullptr;
	std::unique_ptr<detail::bg_handler> bg_;         /* start()'s handler */
	std::unique_ptr<detail::serve_handler> srv_;     /* serve()'s function */
	std::unique_ptr<detail::serve_handler> srv_old_; /* the one it replaced */
};

/* ------------------------------------------------------------ the rest */

/* Whether backend @name ("uring", "futex") can work on this machine. */
inline result<bool> backend_available(std::string_view name) noexcept
{
	detail::cname cn(name);
	if (!cn)
		return cn.err();
	int rc = shmrpc_backend_available(cn.c_str());
	if (rc < 0)
		return error(-rc, "backend_available: unknown backend (uring, futex)");
	return rc == 1;
}

/* The backend node::open picks when none is asked for. */
inline const char *backend_default() noexcept
{
	return shmrpc_backend_default();
}

/* The library's log hook, as shmrpc_set_log (fn may run in any thread,
 * must not call libshmrpc, must not throw). */
inline void set_log(shmrpc_log_fn fn, void *arg = nullptr) noexcept
{
	shmrpc_set_log(fn, arg);
}

} // namespace shmrpc

#endif /* SHMRPC_HPP */
