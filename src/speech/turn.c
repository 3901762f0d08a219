/* Turn-taking and barge-in decisions: see turn.h. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "speech/turn.h"

#define FRAME_MS 20u

struct rv_turn {
	struct rv_turn_cfg cfg;
	uint64_t now; /* end of the last frame processed */

	/* agent side */
	bool playing, barge_allowed, barged;

	/* caller side */
	bool listening;
	uint64_t listen_since;
	bool in_turn;        /* listening and the caller has spoken: end of turn pending */
	uint64_t turn_start; /* first speech start of the turn */

	/* the current speech segment, from the VAD */
	bool speech;
	uint64_t seg_start;
	uint64_t last_voice_end; /* end of the last voiced frame heard in speech */
	double seg_pow_sum;      /* sum of voiced frames' power (linear), for the mean level */
	uint32_t seg_voiced;     /* voiced frames in the segment */

	/* partial transcript and the callback's verdict on it */
	char partial[RV_TURN_PARTIAL_MAX];
	bool partial_dirty;
	float score;
};

void rv_turn_cfg_defaults(struct rv_turn_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->end_silence_ms = 700;
	cfg->complete_silence_ms = 200;
	cfg->incomplete_silence_ms = 1000;
	cfg->complete_threshold = 0.5f;
	cfg->no_input_ms = 5000;
	cfg->barge_in_min_ms = 400;
	cfg->barge_in_min_db = -45.0f;
	cfg->backchannel_ms = 900;
}

static int cfg_check(const struct rv_turn_cfg *c)
{
	if (c->end_silence_ms < 100 || c->end_silence_ms > 10000)
		return -EINVAL;
	if (c->complete_silence_ms < 60 || c->complete_silence_ms > 10000)
		return -EINVAL;
	if (c->incomplete_silence_ms < 100 || c->incomplete_silence_ms > 20000)
		return -EINVAL;
	if (!(c->complete_threshold >= 0.0f && c->complete_threshold <= 1.0f))
		return -EINVAL;
	if (c->no_input_ms > 600000)
		return -EINVAL;
	if (c->barge_in_min_ms < FRAME_MS || c->barge_in_min_ms > 5000)
		return -EINVAL;
	if (!(c->barge_in_min_db >= -100.0f && c->barge_in_min_db <= 0.0f))
		return -EINVAL;
	if (c->backchannel_ms > 10000)
		return -EINVAL;
	return 0;
}

int rv_turn_alloc(const struct rv_turn_cfg *cfg, struct rv_turn **out)
{
	struct rv_turn_cfg def;
	struct rv_turn *t = NULL;
	int err;

	if (!out)
		return -EINVAL;
	if (!cfg) {
		rv_turn_cfg_defaults(&def);
		cfg = &def;
	}
	err = cfg_check(cfg);
	if (err)
		goto out;
	t = calloc(1, sizeof(*t));
	if (!t) {
		err = -ENOMEM;
		goto out;
	}
	t->cfg = *cfg;
	*out = t;
	t = NULL;
out:
	free(t);
	return err;
}

void rv_turn_free(struct rv_turn *t)
{
	free(t);
}

static void partial_clear(struct rv_turn *t)
{
	t->partial[0] = '\0';
	t->partial_dirty = false;
	t->score = 0;
}

void rv_turn_prompt_start(struct rv_turn *t, bool barge_in)
{
	if (!t)
		return;
	t->playing = true;
	t->barge_allowed = barge_in;
	t->barged = false;
	t->listening = false;
	t->in_turn = false;
	partial_clear(t);
}

void rv_turn_listen(struct rv_turn *t)
{
	if (!t)
		return;
	t->playing = false;
	if (t->listening)
		return;
	t->listening = true;
	t->listen_since = t->now;
	/* Speech that is still going on (a barge-in, or talk over a prompt that could not be
	 * interrupted) is the start of this turn. */
	t->in_turn = t->speech;
	t->turn_start = t->seg_start;
}

void rv_turn_prompt_end(struct rv_turn *t)
{
	rv_turn_listen(t);
}

void rv_turn_stop(struct rv_turn *t)
{
	if (!t)
		return;
	t->listening = false;
	t->in_turn = false;
}

int rv_turn_set_partial(struct rv_turn *t, const char *text)
{
	if (!t)
		return -EINVAL;
	if (!text || !*text) {
		partial_clear(t);
		return 0;
	}
	size_t len = strlen(text), keep = len;
	int err = 0;
	if (keep > sizeof(t->partial) - 1) {
		keep = sizeof(t->partial) - 1;
		err = -E2BIG;
	}
	memcpy(t->partial, text + (len - keep), keep);
	t->partial[keep] = '\0';
	t->partial_dirty = true;
	return err;
}

/* Words: ASCII letters, digits and apostrophes, lowercased; anything else separates. Returns
 * the number of words and fills up to max of them (each capped at 31 bytes). */
static size_t words(const char *s, char (*w)[32], size_t max, size_t *total)
{
	size_t n = 0, cnt = 0;
	while (*s) {
		while (*s && !(isalnum((unsigned char)*s) || *s == '\'' || *s == '-'))
			s++;
		if (!*s)
			break;
		size_t l = 0;
		char buf[32];
		while (*s && (isalnum((unsigned char)*s) || *s == '\'' || *s == '-')) {
			if (l < sizeof(buf) - 1)
				buf[l++] = (char)tolower((unsigned char)*s);
			s++;
		}
		buf[l] = '\0';
		cnt++;
		if (w) {
			/* Keep the last `max` words: shift when full. */
			if (n == max) {
				memmove(w, w + 1, (max - 1) * sizeof(*w));
				n--;
			}
			memcpy(w[n], buf, l + 1);
			n++;
		}
	}
	if (total)
		*total = cnt;
	return n;
}

static bool in_list(const char *w, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(w, *list) == 0)
			return true;
	return false;
}

/* Words after which an English sentence almost never stops: conjunctions, articles,
 * possessive determiners, prepositions that need an object, copulas ("my number is"), subject
 * contractions, hesitation fillers and the connectors of dictated addresses and numbers.
 * General English, no flow-specific vocabulary. Words that often close an answer ("so" in "I
 * think so", modals in "yes I can", "you" in "thank you", particles like "on" or "in") are
 * deliberately absent: lengthening a finished answer costs 0.8 s of dead air. */
static const char *const unfinished_words[] = {
    "and",    "or",     "but",        "because", "cause",  "if",     "than",   "although", "though",
    "unless", "while",  "the",        "a",       "an",     "my",     "your",   "his",      "our",
    "their",  "its",    "to",         "of",      "for",    "with",   "from",   "at",       "by",
    "into",   "onto",   "between",    "via",     "per",    "is",     "are",    "was",      "were",
    "i",      "i'm",    "it's",       "i'd",     "i'll",   "we're",  "you're", "they're",  "um",
    "umm",    "uh",     "uhm",        "er",      "erm",    "hmm",    "plus",   "minus",    "dot",
    "dash",   "hyphen", "underscore", "point",   "double", "triple", NULL,
};

/* Digit words: a trailing run of them is a number being dictated, usually in chunks. */
static const char *const digit_words[] = {
    "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", NULL,
};

static bool is_digits(const char *w)
{
	if (!*w)
		return false;
	for (; *w; w++)
		if (!isdigit((unsigned char)*w) && *w != '-')
			return false;
	return true;
}

bool rv_turn_partial_unfinished(const char *partial)
{
	char w[2][32];

	if (!partial)
		return false;
	/* Trailing punctuation that marks a pause inside a sentence. */
	size_t len = strlen(partial);
	while (len && isspace((unsigned char)partial[len - 1]))
		len--;
	if (len && (partial[len - 1] == ',' || partial[len - 1] == '-' || partial[len - 1] == ':' ||
	            (len >= 3 && memcmp(partial + len - 3, "...", 3) == 0)))
		return true;
	if (len && (partial[len - 1] == '.' || partial[len - 1] == '?' || partial[len - 1] == '!'))
		return false;
	size_t n = words(partial, w, 2, NULL);
	if (n == 0)
		return false;
	const char *last = w[n - 1];
	if (in_list(last, unfinished_words))
		return true;
	/* Dictation is a run of digits: two digit words ("seven six"), or a literal run that
	 * is not a complete number yet. One number word alone ends sentences as often as not
	 * ("I already have one", "two"). */
	bool digit_last = in_list(last, digit_words) || is_digits(last);
	bool digit_before = n == 2 && (in_list(w[0], digit_words) || is_digits(w[0]));
	return digit_last && (digit_before || (is_digits(last) && strlen(last) >= 2));
}

static const char *const backchannel_words[] = {
    "mhm",  "mm",      "mmm",  "mm-hmm", "hmm",   "uh-huh", "uhhuh", "uh",  "huh", "ah",
    "oh",   "aha",     "yeah", "yep",    "yes",   "ya",     "okay",  "ok",  "k",   "right",
    "sure", "alright", "fine", "cool",   "great", "i",      "see",   "got", "it",  NULL,
};

bool rv_turn_partial_backchannel(const char *partial)
{
	char w[8][32];
	size_t total = 0;

	if (!partial)
		return false;
	size_t n = words(partial, w, 8, &total);
	if (n == 0 || total > 4)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!in_list(w[i], backchannel_words))
			return false;
	return true;
}

/* The silence the current turn needs before it is over, and why. */
static uint32_t required_silence(struct rv_turn *t, enum rv_turn_reason *why)
{
	if (t->partial[0] && t->partial_dirty) {
		t->score = t->cfg.complete_h ? t->cfg.complete_h(t->partial, t->cfg.arg) : 0.0f;
		t->partial_dirty = false;
	}
	if (t->partial[0] && t->cfg.complete_h && t->score >= t->cfg.complete_threshold) {
		*why = RV_TURN_REASON_COMPLETE;
		return t->cfg.complete_silence_ms;
	}
	if (t->partial[0] && rv_turn_partial_unfinished(t->partial)) {
		*why = RV_TURN_REASON_INCOMPLETE;
		return t->cfg.incomplete_silence_ms;
	}
	*why = RV_TURN_REASON_SILENCE;
	return t->cfg.end_silence_ms;
}

static struct rv_turn_event *push(struct rv_turn_event *ev, size_t *n, enum rv_turn_ev_type type,
                                  uint64_t t_ms)
{
	struct rv_turn_event *e = &ev[(*n)++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->t_ms = t_ms;
	return e;
}

int rv_turn_process(struct rv_turn *t, const struct rv_vad_frame *f, struct rv_turn_event *ev,
                    size_t cap, size_t *n)
{
	struct rv_turn_event *e;

	if (!t || !f || !ev || !n || cap < RV_TURN_MAX_EVENTS)
		return -EINVAL;
	*n = 0;
	t->now = f->t_ms + FRAME_MS;

	if (f->events & RV_VAD_EV_START) {
		t->speech = true;
		t->seg_start = f->start_ms;
		t->seg_pow_sum = 0;
		t->seg_voiced = 0;
		e = push(ev, n, RV_TURN_EV_SPEECH_START, f->start_ms);
		e->speech_start_ms = f->start_ms;
		if (t->listening && !t->in_turn) {
			t->in_turn = true;
			t->turn_start = f->start_ms;
		}
	}
	if (t->speech && f->voiced) {
		t->last_voice_end = t->now;
		t->seg_pow_sum += pow(10.0, f->level_db / 10.0);
		t->seg_voiced++;
	}
	if (f->events & RV_VAD_EV_END) {
		t->speech = false;
		t->last_voice_end = f->end_ms;
		e = push(ev, n, RV_TURN_EV_SPEECH_END, f->end_ms);
		e->speech_start_ms = t->seg_start;
		e->speech_end_ms = f->end_ms;
	}

	/* Barge-in: enough voice, loud enough, and not just a backchannel. */
	if (t->playing && t->barge_allowed && !t->barged && t->speech && t->seg_voiced) {
		uint32_t voiced_ms = t->seg_voiced * FRAME_MS;
		double mean_db = 10.0 * log10(t->seg_pow_sum / t->seg_voiced);
		uint32_t need = t->cfg.barge_in_min_ms;
		if (t->partial[0] && rv_turn_partial_backchannel(t->partial) &&
		    t->cfg.backchannel_ms > need)
			need = t->cfg.backchannel_ms;
		if (voiced_ms >= need && mean_db >= t->cfg.barge_in_min_db) {
			t->barged = true;
			e = push(ev, n, RV_TURN_EV_BARGE_IN, t->now);
			e->speech_start_ms = t->seg_start;
			/* The caller has taken the turn; the host stops the prompt. */
			t->playing = false;
			t->listening = true;
			t->listen_since = t->now;
			t->in_turn = true;
			t->turn_start = t->seg_start;
		}
	}

	if (!t->listening)
		return 0;

	if (t->in_turn) {
		/* Silence runs from the end of the last voiced frame, even while the VAD is still
		 * in its hangover: a short required silence (a complete answer) can then end the
		 * turn before the VAD itself gives up on the speech. A voiced frame in hangover
		 * restarts the count; after the VAD's end only a new speech start does. */
		enum rv_turn_reason why;
		uint32_t need = required_silence(t, &why);
		uint64_t silent = t->now - t->last_voice_end;
		bool voiced_now = t->speech && f->voiced;
		if (!voiced_now && t->now >= t->last_voice_end && silent >= need) {
			e = push(ev, n, RV_TURN_EV_END_OF_TURN, t->now);
			e->speech_start_ms = t->turn_start;
			e->speech_end_ms = t->last_voice_end;
			e->silence_ms = need;
			e->reason = why;
			t->listening = false;
			t->in_turn = false;
			partial_clear(t);
		}
	} else if (t->cfg.no_input_ms && t->now - t->listen_since >= t->cfg.no_input_ms) {
		e = push(ev, n, RV_TURN_EV_NO_INPUT, t->now);
		e->speech_start_ms = t->listen_since;
		t->listening = false;
		partial_clear(t);
	}
	return 0;
}
