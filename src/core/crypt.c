/*
 * crypt.c - AES-256-GCM encryption of the database password.
 *
 * The key is HKDF-SHA256 of a fixed project secret with the cluster name as
 * info, so the stored value is bound to its cluster.  Output is lowercase hex
 * of nonce(12) || ciphertext || tag(16).
 */
#include "crypt.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define NONCE_LEN    12
#define TAG_LEN      16
#define KEY_LEN      32
#define PASSWORD_MAX 255

/*
 * Not a secret in any real sense (it is in the source); it only makes the
 * key differ from anything a casual reader could derive from the cluster
 * name with a stock tool.
 */
static const char project_secret[] = "efm password obfuscation key, version 1";
static const char project_salt[] = "efm-crypt-v1";

bool crypt_hkdf_sha256(const void *ikm, size_t ikmlen, const char *salt, const void *info,
                       size_t infolen, uint8_t *out, size_t outlen)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (kdf == NULL)
		return false;
	EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (ctx == NULL)
		return false;
	/* OpenSSL refuses an empty key; a one-byte zero stands in for it. */
	static const uint8_t zero = 0;
	if (ikmlen == 0) {
		ikm = &zero;
		ikmlen = 1;
	}
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, strlen(salt)),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen),
	    OSSL_PARAM_construct_end(),
	};
	bool ok = EVP_KDF_derive(ctx, out, outlen, params) == 1;
	EVP_KDF_CTX_free(ctx);
	return ok;
}

/* derive_key fills key with HKDF-SHA256(secret, salt, info = cluster). */
static bool derive_key(const char *cluster, unsigned char key[KEY_LEN])
{
	return crypt_hkdf_sha256(project_secret, sizeof(project_secret) - 1, project_salt, cluster,
	                         strlen(cluster), key, KEY_LEN);
}

int crypt_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* gcm_run encrypts or decrypts in with key and nonce; the tag is read or written. */
static int gcm_run(bool enc, const unsigned char *key, const unsigned char *nonce,
                   const unsigned char *in, int inlen, unsigned char *out, unsigned char *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return -EIO;
	int rc = -EIO;
	int len = 0;
	int fin = 0;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1 ||
	    EVP_CipherUpdate(ctx, out, &len, in, inlen) != 1)
		goto done;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto done;
	if (EVP_CipherFinal_ex(ctx, out + len, &fin) != 1) {
		/* Only decryption can fail here, and only because the tag is wrong. */
		rc = enc ? -EIO : -EBADMSG;
		goto done;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto done;
	rc = len + fin;
done:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* crypt_encrypt seals password for cluster as hex of nonce || ciphertext || tag. */
int crypt_encrypt(const char *cluster, const char *password, char *out, size_t outlen)
{
	size_t plen = strlen(password);
	if (plen == 0 || plen > PASSWORD_MAX)
		return -EINVAL;
	size_t rawlen = NONCE_LEN + plen + TAG_LEN;
	if (outlen < 2 * rawlen + 1)
		return -ENOSPC;

	unsigned char key[KEY_LEN];
	unsigned char raw[NONCE_LEN + PASSWORD_MAX + TAG_LEN];
	int rc = -EIO;
	if (!derive_key(cluster, key))
		goto done;
	if (RAND_bytes(raw, NONCE_LEN) != 1)
		goto done;
	rc = gcm_run(true, key, raw, (const unsigned char *)password, (int)plen, raw + NONCE_LEN,
	             raw + NONCE_LEN + plen);
	if (rc < 0)
		goto done;

	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < rawlen; i++) {
		out[2 * i] = digits[raw[i] >> 4];
		out[2 * i + 1] = digits[raw[i] & 0xf];
	}
	out[2 * rawlen] = '\0';
	rc = 0;
done:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

/* crypt_decrypt checks and opens a value made by crypt_encrypt for the same cluster. */
int crypt_decrypt(const char *cluster, const char *hex, char *out, size_t outlen)
{
	size_t hlen = strlen(hex);
	if (hlen % 2 != 0 || hlen < 2 * (NONCE_LEN + 1 + TAG_LEN) ||
	    hlen > 2 * (NONCE_LEN + PASSWORD_MAX + TAG_LEN))
		return -EINVAL;
	size_t rawlen = hlen / 2;
	unsigned char raw[NONCE_LEN + PASSWORD_MAX + TAG_LEN];
	for (size_t i = 0; i < rawlen; i++) {
		int hi = crypt_hex_digit(hex[2 * i]);
		int lo = crypt_hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		raw[i] = (unsigned char)(hi << 4 | lo);
	}
	size_t plen = rawlen - NONCE_LEN - TAG_LEN;
	if (outlen < plen + 1)
		return -ENOSPC;

	unsigned char key[KEY_LEN];
	unsigned char plain[PASSWORD_MAX];
	int rc = -EIO;
	if (!derive_key(cluster, key))
		goto done;
	rc = gcm_run(false, key, raw, raw + NONCE_LEN, (int)plen, plain, raw + NONCE_LEN + plen);
	if (rc < 0)
		goto done;
	/* A NUL inside cannot come from crypt_encrypt, whose input is a C string. */
	if (memchr(plain, '\0', plen) != NULL) {
		rc = -EBADMSG;
		goto done;
	}
	memcpy(out, plain, plen);
	out[plen] = '\0';
	rc = 0;
done:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(plain, sizeof(plain));
	return rc;
}
