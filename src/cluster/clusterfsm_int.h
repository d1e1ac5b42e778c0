/*
 * clusterfsm_int.h - what the parts of the cluster state machine share:
 * clusterfsm.c (queries and pure helpers), clusterfsm_apply.c (the handler
 * table and the list and membership commands), clusterfsm_promotion.c (the
 * promotion lock) and clusterfsm_codec.c (builders, byte formats).  Calls
 * only go rightwards along codec -> apply -> promotion -> clusterfsm.c, so
 * no part calls one that calls it back.
 */
#ifndef EFM_CLUSTERFSM_INT_H
#define EFM_CLUSTERFSM_INT_H

#include "clusterfsm.h"

/* clusterfsm_verdict fills a result with a code and a formatted reason; returns the code. */
enum clusterfsm_code clusterfsm_verdict(struct clusterfsm_result *r, enum clusterfsm_code code,
                                        const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Host lists (allowed, priority): index or -1, remove if present, insert at 0..n. */
int clusterfsm_allowed_index(const struct cluster_state *s, const char *host);
int clusterfsm_priority_index(const struct cluster_state *s, const char *host);
void clusterfsm_list_remove(char (*list)[CLUSTERFSM_HOST_MAX], size_t *n, const char *host);
void clusterfsm_list_insert(char (*list)[CLUSTERFSM_HOST_MAX], size_t *n, size_t at,
                            const char *host);

/* clusterfsm_phase_active: a lock in one of these phases blocks a new lock. */
bool clusterfsm_phase_active(enum clusterfsm_phase p);

/*
 * clusterfsm_cmd_fields_ok: every enum of c is in range and its address is
 * terminated; what apply needs before trusting a hand-built command (the
 * codec adds its own, stricter, character check).
 */
bool clusterfsm_cmd_fields_ok(const struct clusterfsm_cmd *c);

/* A command handler: decides, and changes s only when the verdict is OK. */
typedef enum clusterfsm_code (*clusterfsm_handler)(struct cluster_state *s,
                                                   const struct clusterfsm_cmd *c,
                                                   struct clusterfsm_result *r);

/* clusterfsm_promotion.c */
enum clusterfsm_code clusterfsm_do_promotion_lock(struct cluster_state *s,
                                                  const struct clusterfsm_cmd *c,
                                                  struct clusterfsm_result *r);
enum clusterfsm_code clusterfsm_do_promotion_phase(struct cluster_state *s,
                                                   const struct clusterfsm_cmd *c,
                                                   struct clusterfsm_result *r);
enum clusterfsm_code clusterfsm_do_promotion_release(struct cluster_state *s,
                                                     const struct clusterfsm_cmd *c,
                                                     struct clusterfsm_result *r);

#endif
