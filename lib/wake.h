/* SPDX-License-Identifier: MIT */
/*
 * The wake protocol on one futex word (wake.c has it, with its barriers).
 */
#ifndef SHMRPC_WAKE_H
#define SHMRPC_WAKE_H

#include <stdatomic.h>
#include <stdint.h>

enum shmrpc__wake_kind {
	SHMRPC__WAKE_NONE = 0, /* the other side is awake: no syscall */
	SHMRPC__WAKE_WORD = 1, /* FUTEX_WAKE the word */
	SHMRPC__WAKE_BELL = 2, /* the sleeper watches its bell: ring that */
};
/* Waker side, after publishing what the sleeper waits for. */
enum shmrpc__wake_kind shmrpc__wake_prepare(_Atomic uint32_t *w);
/* Sleeper side: announce the sleep, returning the value to wait on. */
uint32_t shmrpc__wait_arm(_Atomic uint32_t *w, uint32_t flags);
/* Sleeper side, after the sleep (or instead of it): clear SLEEP and BELL. */
void shmrpc__wait_disarm(_Atomic uint32_t *w);
/* Sleeper side, between arming and the last look: the fence (G). */
void shmrpc__wait_fence(void);
/* Change @w's sequence, keeping its flags (to end a sleep on it). */
void shmrpc__word_bump(_Atomic uint32_t *w);

#endif /* SHMRPC_WAKE_H */
