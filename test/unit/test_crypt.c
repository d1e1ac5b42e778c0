/*
 * test_crypt.c - round trips and refusals of the password encryption.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypt.h"

/* A value encrypted for one cluster decrypts to the same password. */
static void test_round_trip(void **state)
{
	char hex[CRYPT_HEX_MAX];
	char out[256];
	assert_int_equal(crypt_encrypt("acctg", "s3cret pass", hex, sizeof(hex)), 0);
	/* 12 nonce + 11 text + 16 tag bytes, two hex digits each, lowercase. */
	assert_int_equal(strlen(hex), 2 * (12 + 11 + 16));
	assert_int_equal(strspn(hex, "0123456789abcdef"), strlen(hex));
	assert_int_equal(crypt_decrypt("acctg", hex, out, sizeof(out)), 0);
	assert_string_equal(out, "s3cret pass");
}

/* Two encryptions of one password differ (random nonce) and both decrypt. */
static void test_nonce_random(void **state)
{
	char a[CRYPT_HEX_MAX], b[CRYPT_HEX_MAX], out[256];
	assert_int_equal(crypt_encrypt("acctg", "pw", a, sizeof(a)), 0);
	assert_int_equal(crypt_encrypt("acctg", "pw", b, sizeof(b)), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(crypt_decrypt("acctg", b, out, sizeof(out)), 0);
	assert_string_equal(out, "pw");
}

/* The longest password (255 bytes) fits CRYPT_HEX_MAX and round-trips. */
static void test_longest(void **state)
{
	char pw[256], hex[CRYPT_HEX_MAX], out[256];
	memset(pw, 'x', 255);
	pw[255] = '\0';
	assert_int_equal(crypt_encrypt("c", pw, hex, sizeof(hex)), 0);
	assert_int_equal(crypt_decrypt("c", hex, out, sizeof(out)), 0);
	assert_string_equal(out, pw);
}

static void test_wrong_cluster(void **state)
{
	char hex[CRYPT_HEX_MAX], out[256];
	assert_int_equal(crypt_encrypt("acctg", "secret", hex, sizeof(hex)), 0);
	assert_int_equal(crypt_decrypt("sales", hex, out, sizeof(out)), -EBADMSG);
	assert_int_equal(crypt_decrypt("acctg2", hex, out, sizeof(out)), -EBADMSG);
}

/* Changing any one byte (nonce, text or tag) makes the value fail to authenticate. */
static void test_tampered(void **state)
{
	char hex[CRYPT_HEX_MAX], out[256];
	assert_int_equal(crypt_encrypt("acctg", "secret", hex, sizeof(hex)), 0);
	size_t n = strlen(hex);
	for (size_t i = 0; i < n; i += 2) {
		char copy[CRYPT_HEX_MAX];
		memcpy(copy, hex, n + 1);
		copy[i] = copy[i] == '0' ? '1' : '0';
		assert_int_equal(crypt_decrypt("acctg", copy, out, sizeof(out)), -EBADMSG);
	}
	/* Dropping the last byte leaves a short tag: also refused, not accepted. */
	hex[n - 2] = '\0';
	assert_int_equal(crypt_decrypt("acctg", hex, out, sizeof(out)), -EBADMSG);
}

static void test_malformed(void **state)
{
	char hex[CRYPT_HEX_MAX], out[256];
	assert_int_equal(crypt_encrypt("acctg", "secret", hex, sizeof(hex)), 0);
	size_t n = strlen(hex);

	char odd[CRYPT_HEX_MAX];
	memcpy(odd, hex, n + 1);
	odd[n - 1] = '\0';
	assert_int_equal(crypt_decrypt("acctg", odd, out, sizeof(out)), -EINVAL);

	char bad[CRYPT_HEX_MAX];
	memcpy(bad, hex, n + 1);
	bad[10] = 'g';
	assert_int_equal(crypt_decrypt("acctg", bad, out, sizeof(out)), -EINVAL);
	bad[10] = ' ';
	assert_int_equal(crypt_decrypt("acctg", bad, out, sizeof(out)), -EINVAL);

	/* Shorter than nonce + one byte + tag. */
	assert_int_equal(crypt_decrypt("acctg", "", out, sizeof(out)), -EINVAL);
	assert_int_equal(crypt_decrypt("acctg", "00112233", out, sizeof(out)), -EINVAL);
	char shortv[2 * 28 + 1];
	memset(shortv, 'a', 2 * 28);
	shortv[2 * 28] = '\0';
	assert_int_equal(crypt_decrypt("acctg", shortv, out, sizeof(out)), -EINVAL);

	/* Longer than the longest possible value. */
	char longv[2 * (12 + 256 + 16) + 1];
	memset(longv, 'a', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	assert_int_equal(crypt_decrypt("acctg", longv, out, sizeof(out)), -EINVAL);
}

static void test_refused_passwords(void **state)
{
	char hex[CRYPT_HEX_MAX];
	assert_int_equal(crypt_encrypt("acctg", "", hex, sizeof(hex)), -EINVAL);
	char pw[300];
	memset(pw, 'y', 256);
	pw[256] = '\0';
	assert_int_equal(crypt_encrypt("acctg", pw, hex, sizeof(hex)), -EINVAL);
}

static void test_buffers_too_small(void **state)
{
	char hex[CRYPT_HEX_MAX], out[8];
	/* "secret" needs 2 * (12 + 6 + 16) + 1 = 69 bytes. */
	assert_int_equal(crypt_encrypt("acctg", "secret", hex, 68), -ENOSPC);
	assert_int_equal(crypt_encrypt("acctg", "secret", hex, 69), 0);
	assert_int_equal(crypt_decrypt("acctg", hex, out, 6), -ENOSPC);
	assert_int_equal(crypt_decrypt("acctg", hex, out, 7), 0);
	assert_string_equal(out, "secret");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_nonce_random),
	    cmocka_unit_test(test_longest),           cmocka_unit_test(test_wrong_cluster),
	    cmocka_unit_test(test_tampered),          cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_refused_passwords), cmocka_unit_test(test_buffers_too_small),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
