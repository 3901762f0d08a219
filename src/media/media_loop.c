/* The media loop thread and its command queue: see media_loop.h. */
#include <errno.h>
#include <pthread.h>
#include <re.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/log.h"
#include "media/media_loop.h"

struct rv_media_loop {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started; /* 1 running, -errno failed */
	int stopped;
	struct mqueue *mq;
	int (*init)(void *);
	void *init_arg;
};

struct cmd {
	rv_media_fn *fn;
	void *arg;
};

enum { CMD_RUN = 1, CMD_STOP = 2 };

static void cmd_h(int id, void *data, void *arg)
{
	struct cmd *c = data;
	(void)arg;
	if (c->fn)
		c->fn(c->arg);
	free(c);
	if (id == CMD_STOP)
		re_cancel();
}

/*
 * libre indexes its handler table by descriptor number and sizes it at FD_SETSIZE (1024) unless
 * told otherwise before the first fd_listen; a call holds three descriptors (RTP, RTCP and the
 * recording's file), so past ~330 calls every new socket failed with EMFILE. Size the table to
 * the process's descriptor limit instead (at most 65536 entries, about 3 MiB).
 */
static int size_fd_table(void)
{
	struct rlimit rl;
	rlim_t n = 1024;
	/* Every call holds a few descriptors: take the hard limit the system allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rv_warn("media", "cannot raise the descriptor limit: %s", strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > n)
		n = rl.rlim_cur > 65536 ? 65536 : rl.rlim_cur; /* RLIM_INFINITY too */
	return fd_setsize((int)n);
}

static void *loop_main(void *arg)
{
	struct rv_media_loop *loop = arg;
	int err = libre_init();
	if (!err)
		err = size_fd_table();
	if (!err)
		err = mqueue_alloc(&loop->mq, cmd_h, loop);
	if (!err && loop->init)
		err = loop->init(loop->init_arg);
	if (err < 0)
		err = -err;
	pthread_mutex_lock(&loop->mu);
	loop->started = err ? -err : 1;
	pthread_cond_broadcast(&loop->cv);
	pthread_mutex_unlock(&loop->mu);
	if (!err)
		err = re_main(NULL);
	if (err)
		rv_info("media", "media loop ended: %s", strerror(err));
	loop->mq = mem_deref(loop->mq);
	libre_close();
	return NULL;
}

int rv_media_loop_start(int (*init)(void *arg), void *arg, struct rv_media_loop **out)
{
	struct rv_media_loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	pthread_mutex_init(&loop->mu, NULL);
	pthread_cond_init(&loop->cv, NULL);
	loop->init = init;
	loop->init_arg = arg;
	int e = pthread_create(&loop->thread, NULL, loop_main, loop);
	if (e) {
		free(loop);
		return -e;
	}
	pthread_mutex_lock(&loop->mu);
	while (!loop->started)
		pthread_cond_wait(&loop->cv, &loop->mu);
	int started = loop->started;
	pthread_mutex_unlock(&loop->mu);
	if (started < 0) {
		pthread_join(loop->thread, NULL);
		pthread_mutex_destroy(&loop->mu);
		pthread_cond_destroy(&loop->cv);
		free(loop);
		return started;
	}
	*out = loop;
	return 0;
}

static int push(struct rv_media_loop *loop, int id, rv_media_fn *fn, void *arg)
{
	struct cmd *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->arg = arg;
	pthread_mutex_lock(&loop->mu);
	int err = loop->stopped ? ESHUTDOWN : mqueue_push(loop->mq, id, c);
	if (!err && id == CMD_STOP)
		loop->stopped = 1;
	pthread_mutex_unlock(&loop->mu);
	if (err) {
		free(c);
		return -err;
	}
	return 0;
}

int rv_media_loop_exec(struct rv_media_loop *loop, rv_media_fn *fn, void *arg)
{
	if (!loop || !fn)
		return -EINVAL;
	return push(loop, CMD_RUN, fn, arg);
}

void rv_media_loop_stop(struct rv_media_loop *loop, rv_media_fn *fini, void *arg)
{
	if (!loop)
		return;
	if (push(loop, CMD_STOP, fini, arg) != 0)
		rv_error("media", "cannot stop the media loop cleanly");
	pthread_join(loop->thread, NULL);
	pthread_mutex_destroy(&loop->mu);
	pthread_cond_destroy(&loop->cv);
	free(loop);
}

int rv_media_loop_is_current(const struct rv_media_loop *loop)
{
	return loop && pthread_equal(pthread_self(), loop->thread);
}
