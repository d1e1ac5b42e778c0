/*
 * admin_perm.c - who may run the admin commands that change the cluster.
 */
#define _GNU_SOURCE /* getgrouplist */
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "admin_int.h"

/* group_id_of looks up a group's id; false when it does not exist. */
static bool group_id_of(const char *name, gid_t *out)
{
	struct group grp, *found = NULL;
	char buf[16384];
	if (getgrnam_r(name, &grp, buf, sizeof(buf), &found) != 0 || found == NULL)
		return false;
	*out = grp.gr_gid;
	return true;
}

/* user_in_group tells whether uid's supplementary groups include gid. */
static bool user_in_group(uid_t uid, gid_t gid)
{
	struct passwd pw, *found = NULL;
	char buf[16384];
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) != 0 || found == NULL)
		return false;
	gid_t small[64];
	gid_t *groups = small;
	int n = (int)(sizeof(small) / sizeof(small[0]));
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0) {
		/* n now holds the number needed. */
		groups = calloc((size_t)n, sizeof(*groups));
		if (groups == NULL || getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0) {
			free(groups);
			return false;
		}
	}
	bool member = false;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			member = true;
	if (groups != small)
		free(groups);
	return member;
}

/*
 * admin_caller_may_mutate: root, the agent's euid, or group "efm".  The
 * group lookups go through NSS and may block (LDAP, sssd); they run only for
 * mutating commands, which are rare and operator-driven, so the stall is an
 * accepted cost rather than something a status poll can trigger.
 */
bool admin_caller_may_mutate(uid_t uid, gid_t gid)
{
	if (uid == 0 || uid == geteuid())
		return true;
	gid_t efm_gid;
	if (!group_id_of(ADMIN_EFM_GROUP, &efm_gid))
		return false;
	return gid == efm_gid || user_in_group(uid, efm_gid);
}
