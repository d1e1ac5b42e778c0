/*
 * preflight.h - every check a configuration must pass before an agent may
 * start with it.
 *
 * The agent (at start and on reload) and `efm prop-check` both call
 * preflight_load, so prop-check reports exactly what the agent would refuse:
 * the configuration files themselves, then what they name, which only the
 * running system can tell (a script that is missing or unsafe, a password
 * that does not decrypt for this cluster, a peer key file that cannot be
 * used).
 */
#ifndef EFM_PREFLIGHT_H
#define EFM_PREFLIGHT_H

#include <stddef.h>

#include "config.h"

/*
 * preflight_load reads CLUSTER's configuration from dir (config_load) and
 * checks what it names, recording every problem in pr.  The configuration
 * is usable only when problems_total(pr) == 0 afterwards; NULL only when
 * memory runs out.  When password is not NULL it receives the decrypted
 * database password ("" when none is set or it does not decrypt).
 */
struct efm_config *preflight_load(const char *dir, const char *cluster, char *password,
                                  size_t pwlen, struct problems *pr);

#endif
