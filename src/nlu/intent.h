/*
 * Intent recognition: a multinomial logistic-regression classifier over hashed word unigrams,
 * word bigrams and character 3-5-grams of each word, with a temperature fitted on held-out
 * data so the confidence is calibrated, and an out-of-scope answer when no intent is confident
 * enough (or the out_of_scope class wins).
 *
 * The built-in model is trained at build time from src/nlu/intents.tsv (tools/train_intents.c)
 * and compiled into the binary; rv_intent_train() builds more from labelled examples (per-flow
 * custom intents, POST /api/voice-ai/train-model). Models are immutable once built: share one
 * between threads freely. Self-contained (libc and libm only), so the build tool links it alone.
 */
#ifndef RV_NLU_INTENT_H
#define RV_NLU_INTENT_H

#include <stddef.h>
#include <stdint.h>

#define RV_INTENT_MAX_LABELS   64
#define RV_INTENT_MAX_LABEL    48   /* bytes, including the NUL */
#define RV_INTENT_MAX_TEXT     2000 /* longer utterances are cut here */
#define RV_INTENT_MAX_EXAMPLES 50000
#define RV_INTENT_OOS          "out_of_scope"

struct rv_intent_model;

struct rv_intent_example {
	const char *label;
	const char *text;
};

struct rv_intent_train_cfg {
	unsigned epochs; /* passes over the data; default 40 */
	double l2;       /* L2 penalty per example; default 1e-4 */
	double lr;       /* AdaGrad base rate; default 0.1 */
	double holdout;  /* share held out for calibration and the report (0-0.5); default 0.2 */
	double min_conf; /* below this the answer is out_of_scope; default 0.35 */
	uint64_t seed;   /* shuffle and split; default 1 */
};

struct rv_intent_report {
	size_t n_train, n_holdout;
	double holdout_accuracy; /* before retraining on everything; -1 with no hold-out */
	double temperature;      /* fitted on the hold-out (1 with none) */
	size_t n_features;
	unsigned n_labels;
};

void rv_intent_train_defaults(struct rv_intent_train_cfg *cfg);

/*
 * Train a model. Labels are any non-empty strings up to RV_INTENT_MAX_LABEL - 1 bytes; at
 * least two labels. With a hold-out share, the model is first trained on the rest to measure
 * accuracy and fit the temperature, then retrained on every example. Returns 0 and sets *out
 * (free with rv_intent_free) and fills *rep (may be NULL); -EINVAL (too few examples/labels,
 * a bad label, too many), -ENOMEM. `why` gets a sentence on failure.
 */
int rv_intent_train(const struct rv_intent_example *ex, size_t n,
                    const struct rv_intent_train_cfg *cfg, struct rv_intent_model **out,
                    struct rv_intent_report *rep, char *why, size_t whylen);

void rv_intent_free(struct rv_intent_model *m);

struct rv_intent_ranked {
	const char *label; /* borrowed from the model */
	double conf;
};

struct rv_intent_result {
	const char *intent;             /* the answer: a label, or "out_of_scope" */
	double confidence;              /* calibrated probability of the answer */
	struct rv_intent_ranked top[3]; /* the best three labels, before the out-of-scope rule */
};

/* Classify an utterance (any text; not UTF-8-checked, bytes outside ASCII letters and digits
 * are separators). Never fails; an empty text is out_of_scope with confidence 1. */
void rv_intent_classify(const struct rv_intent_model *m, const char *text,
                        struct rv_intent_result *out);

/* The model's labels. */
unsigned rv_intent_labels(const struct rv_intent_model *m, const char *const **labels);

/*
 * Serialise to a malloc'd buffer (*buf, *len; caller frees), and back. rv_intent_load checks
 * every length and count against the buffer: a truncated or corrupt model is -EINVAL, never
 * a crash. Returns 0, -EINVAL or -ENOMEM.
 */
int rv_intent_save(const struct rv_intent_model *m, uint8_t **buf, size_t *len);
int rv_intent_load(const uint8_t *buf, size_t len, struct rv_intent_model **out);

/* The built-in model, loaded from the bytes compiled into the binary at first use (thread-safe).
 * NULL only if those bytes are corrupt (a build error). */
const struct rv_intent_model *rv_intent_builtin(void);

/*
 * Read a labelled file (label<TAB>text per line, '#' comments, blank lines skipped) into
 * examples whose strings point into *bufp (caller frees *bufp and *exp). Returns the count, or
 * a negative errno with the line in why.
 */
long rv_intent_read_tsv(const char *path, char **bufp, struct rv_intent_example **exp, char *why,
                        size_t whylen);

#endif
