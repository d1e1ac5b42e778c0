/*
 * fuzz_props.c - the .properties and YAML readers on arbitrary text.
 *
 * Both readers take the text straight from the fuzzer, without the text
 * checks props_read_text makes first, so they are held to more than their
 * callers ask of them: no crash, no leak, no quadratic blow-up (libFuzzer's
 * -timeout catches the last) on any bytes at all.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "props.h"
#include "yamlconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > PROPS_MAX_FILE)
		return 0;
	char *text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	struct props p = {0};
	struct problems pr = {0};
	if (props_parse("f.properties", text, size, &p, &pr)) {
		/* Every entry keeps a line within the file and a printable key. */
		for (size_t i = 0; i < p.n; i++) {
			if (p.v[i].line < 1 || p.v[i].key[0] == '\0')
				abort();
		}
	}
	props_free(&p);
	problems_free(&pr);

	if (yamlconf_parse("f.yaml", text, size, &p, &pr)) {
		for (size_t i = 0; i < p.n; i++) {
			if (p.v[i].line < 1)
				abort();
		}
	}
	props_free(&p);
	problems_free(&pr);
	free(text);
	return 0;
}
