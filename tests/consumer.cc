// SPDX-License-Identifier: MIT
/*
 * A C++ program built against the *installed* headers only (shmrpc.hpp,
 * shmrpc.h, pkg-config), as a user would: scripts/install-check.sh compiles
 * it with and without exceptions and runs it. Two processes exchange, the
 * zero-copy guards included; exits 0 on success.
 */
#include <shmrpc.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;

#define FAIL(what, r)                                                                   \
	do {                                                                            \
		std::fprintf(stderr, "consumer.cc: %s: %s\n", what, (r).error().message()); \
		_exit(1);                                                               \
	} while (0)

static void child(const shmrpc::options &o)
{
	auto n = shmrpc::node::open("pong", o);
	if (!n)
		FAIL("child open", n);
	std::string buf;
	auto r = n->recv(buf, 5s);
	if (!r || buf != "ping")
		FAIL("child recv", r);
	if (auto s = n->send(r->from(), "pong", 5s); !s)
		FAIL("child send", s);
	auto rx = n->peek(5s);
	if (!rx || rx->data() != "zcopy")
		FAIL("child peek", rx);
	_exit(0);
}

int main()
{
	char domain[32];
	std::snprintf(domain, sizeof(domain), "consumer-cc-%d", (int)getpid());
	shmrpc::options o;
	o.domain = domain;
	auto n = shmrpc::node::open("ping", o);
	if (!n)
		FAIL("open", n);
	pid_t pid = fork();
	if (pid == 0)
		child(o);
	if (auto w = n->wait_node("pong", 5s); !w)
		FAIL("wait_node", w);
	if (auto s = n->send("pong", "ping", 5s); !s)
		FAIL("send", s);
	char buf[16];
	auto r = n->recv(buf, 5s);
	if (!r || std::string_view(buf, r->size) != "pong")
		FAIL("recv", r);
	auto tx = n->reserve("pong", 5, 5s);
	if (!tx)
		FAIL("reserve", tx);
	std::memcpy(tx->data().data(), "zcopy", 5);
	if (auto c = tx->commit(); !c)
		FAIL("commit", c);
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		std::fprintf(stderr, "consumer.cc: child failed\n");
		return 1;
	}
	std::printf("consumer.cc: ok (backend %s, exceptions %s)\n", n->backend(),
#if defined(__cpp_exceptions)
		    "on"
#else
		    "off"
#endif
	);
	return 0;
}
