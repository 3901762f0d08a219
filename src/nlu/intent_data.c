/* The built-in intent examples compiled into the binary (see model_registry.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nlu/model_registry.h"

extern const unsigned char rv_intent_data_tsv[];
extern const size_t rv_intent_data_tsv_len;

long rv_intent_builtin_examples(char **bufp, struct rv_intent_example **exp)
{
	char *buf = malloc(rv_intent_data_tsv_len + 1);
	size_t lines = 1;
	for (size_t i = 0; i < rv_intent_data_tsv_len; i++)
		lines += rv_intent_data_tsv[i] == '\n';
	struct rv_intent_example *ex = calloc(lines, sizeof(*ex));
	if (!buf || !ex) {
		free(buf);
		free(ex);
		return -ENOMEM;
	}
	memcpy(buf, rv_intent_data_tsv, rv_intent_data_tsv_len);
	buf[rv_intent_data_tsv_len] = '\0';
	long n = 0;
	/* The build already trained on this file, so every line is known to be well formed;
	 * a line without a tab would be skipped rather than trusted. */
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t ll = strlen(line);
		if (ll && line[ll - 1] == '\r')
			line[--ll] = '\0';
		char *tab = strchr(line, '\t');
		if (ll == 0 || line[0] == '#' || !tab || tab == line || !tab[1])
			continue;
		*tab = '\0';
		ex[n].label = line;
		ex[n].text = tab + 1;
		n++;
	}
	*bufp = buf;
	*exp = ex;
	return n;
}
