/* The active intent model, swapped atomically under reference counting: see model_registry.h. */
#include "nlu/model_registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct rv_intent_ref {
	atomic_uint refs;
	struct rv_intent_model *owned; /* NULL for the built-in model, which lives forever */
	const struct rv_intent_model *m;
	int64_t version;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rv_intent_ref *active; /* NULL: the built-in model */
static struct rv_intent_ref builtin_ref;

const struct rv_intent_model *rv_intent_registry_acquire(struct rv_intent_ref **ref)
{
	/* Outside the lock: the built-in model loads once, behind its own pthread_once. */
	const struct rv_intent_model *b = rv_intent_builtin();
	const struct rv_intent_model *m = NULL;
	struct rv_intent_ref *r;
	pthread_mutex_lock(&lock);
	r = active;
	if (r) {
		atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
	} else if (b) {
		/* The built-in reference is never counted; its pointer is only touched here. */
		builtin_ref.m = b;
		r = &builtin_ref;
	}
	if (r)
		m = r->m;
	pthread_mutex_unlock(&lock);
	*ref = r;
	return m;
}

void rv_intent_registry_release(struct rv_intent_ref *ref)
{
	if (!ref || !ref->owned)
		return;
	if (atomic_fetch_sub_explicit(&ref->refs, 1, memory_order_acq_rel) == 1) {
		rv_intent_free(ref->owned);
		free(ref);
	}
}

/* Swap in r (NULL = built-in) and drop the registry's reference to the one it replaces. */
static void swap_in(struct rv_intent_ref *r)
{
	pthread_mutex_lock(&lock);
	struct rv_intent_ref *old = active;
	active = r;
	pthread_mutex_unlock(&lock);
	rv_intent_registry_release(old);
}

int rv_intent_registry_activate(struct rv_intent_model *m, int64_t version_id)
{
	if (!m || version_id <= 0)
		return -EINVAL;
	struct rv_intent_ref *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	atomic_init(&r->refs, 1); /* the registry's own reference */
	r->owned = m;
	r->m = m;
	r->version = version_id;
	swap_in(r);
	return 0;
}

void rv_intent_registry_reset(void)
{
	swap_in(NULL);
}

int64_t rv_intent_ref_version(const struct rv_intent_ref *ref)
{
	return ref ? ref->version : 0;
}

int64_t rv_intent_registry_active_version(void)
{
	pthread_mutex_lock(&lock);
	int64_t v = active ? active->version : 0;
	pthread_mutex_unlock(&lock);
	return v;
}
