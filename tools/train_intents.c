/*
 * Build tool: trains the built-in intent model from a labelled file and writes it for
 * embedding into the binary.
 *   rv-train-intents DATA.tsv OUT.bin
 * Prints the held-out accuracy and the fitted temperature. Exit 0 on success, 1 on failure.
 */
#include <stdio.h>
#include <stdlib.h>

#include "nlu/intent.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s DATA.tsv OUT.bin\n", argv[0]);
		return 2;
	}
	char why[256] = "", *buf = NULL;
	struct rv_intent_example *ex = NULL;
	long n = rv_intent_read_tsv(argv[1], &buf, &ex, why, sizeof(why));
	if (n < 0) {
		fprintf(stderr, "rv-train-intents: %s\n", why);
		return 1;
	}
	struct rv_intent_model *m = NULL;
	struct rv_intent_report rep;
	int ret = 1;
	if (rv_intent_train(ex, (size_t)n, NULL, &m, &rep, why, sizeof(why)) != 0) {
		fprintf(stderr, "rv-train-intents: %s\n", why);
		goto out;
	}
	uint8_t *bin = NULL;
	size_t len = 0;
	if (rv_intent_save(m, &bin, &len) != 0) {
		fprintf(stderr, "rv-train-intents: out of memory\n");
		goto out;
	}
	FILE *fp = fopen(argv[2], "wb");
	if (!fp || fwrite(bin, 1, len, fp) != len || fclose(fp) != 0) {
		fprintf(stderr, "rv-train-intents: cannot write %s\n", argv[2]);
		free(bin);
		goto out;
	}
	free(bin);
	printf("rv-train-intents: %ld examples, %u labels, %zu features, held-out accuracy %.3f "
	       "(%zu held out), temperature %.2f, %zu bytes\n",
	       n, rep.n_labels, rep.n_features, rep.holdout_accuracy, rep.n_holdout,
	       rep.temperature, len);
	ret = 0;
out:
	rv_intent_free(m);
	free(ex);
	free(buf);
	return ret;
}
