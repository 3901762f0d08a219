/*
 * The intent model in use: the built-in one until an operator activates a trained version
 * (POST /api/voice-ai/models/{id}/activate), then that one. Swapping is atomic and safe while
 * turns are running: a turn takes a counted reference for as long as it needs the model (and
 * the label strings the model's results point into), and a replaced model is freed when the
 * last such reference is released, so in-flight turns finish on the model they started with.
 * Process-wide and thread-safe.
 */
#ifndef RV_NLU_MODEL_REGISTRY_H
#define RV_NLU_MODEL_REGISTRY_H

#include <stdint.h>

#include "nlu/intent.h"

struct rv_intent_ref;

/*
 * Take a reference to the active model and return it; *ref receives the handle to give back
 * with rv_intent_registry_release(). Never blocks on training or I/O (a short mutex only).
 * Returns NULL (and *ref NULL) only when nothing is active and the built-in model is corrupt,
 * which is a build error.
 */
const struct rv_intent_model *rv_intent_registry_acquire(struct rv_intent_ref **ref);

/* Give back a reference (NULL is fine). The last reference to a replaced model frees it. */
void rv_intent_registry_release(struct rv_intent_ref *ref);

/*
 * Make `m` the active model, tagged with its stored version id (> 0). Consumes m on success;
 * on failure (-EINVAL for a bad id, -ENOMEM) m stays the caller's and nothing changes. The
 * model it replaces is freed once the turns using it release it.
 */
int rv_intent_registry_activate(struct rv_intent_model *m, int64_t version_id);

/* Go back to the built-in model. */
void rv_intent_registry_reset(void);

/* The stored version id of the model a reference holds (0 = the built-in model). */
int64_t rv_intent_ref_version(const struct rv_intent_ref *ref);

/* The stored version id of the active model, 0 for the built-in one. */
int64_t rv_intent_registry_active_version(void);

/*
 * The built-in model's labelled examples (src/nlu/intents.tsv, compiled in), for training
 * models that extend the standard intents. The strings point into *bufp; the caller frees
 * *bufp and *exp. Returns the count, or -ENOMEM.
 */
long rv_intent_builtin_examples(char **bufp, struct rv_intent_example **exp);

#endif
