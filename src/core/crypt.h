/*
 * crypt.h - the database password as stored in db.password.encrypted.
 *
 * AES-256-GCM with a key derived from a fixed project secret and the cluster
 * name, so a value pasted into another cluster's file does not decrypt.  This
 * keeps the password out of casual sight; it is not protection against
 * anybody who can read the file and run efm (see the README).
 */
#ifndef EFM_CRYPT_H
#define EFM_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for the hex text of a password of up to 255 bytes. */
#define CRYPT_HEX_MAX 1024

/*
 * crypt_encrypt writes the lowercase hex encoding of nonce || ciphertext ||
 * tag to out.  Returns 0, -EINVAL for an empty or too long password, -ENOSPC
 * when out is too small, -EIO when OpenSSL fails.
 */
int crypt_encrypt(const char *cluster, const char *password, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/*
 * crypt_decrypt reverses crypt_encrypt.  Returns 0, -EINVAL when hex is not
 * a well-formed value, -EBADMSG when it does not authenticate (wrong cluster
 * name, edited value), -ENOSPC when out is too small.
 */
int crypt_decrypt(const char *cluster, const char *hex, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/*
 * crypt_hkdf_sha256 derives outlen bytes with HKDF-SHA256 (an empty ikm is
 * replaced by one zero byte, which OpenSSL requires).  Shared with the peer
 * key derivation.
 */
bool crypt_hkdf_sha256(const void *ikm, size_t ikmlen, const char *salt, const void *info,
                       size_t infolen, uint8_t *out, size_t outlen);

/* crypt_hex_digit returns the value of one hex digit, or -1. */
int crypt_hex_digit(int c);

#endif
