/*
 * test_config.c - the option table and config_load: good files in both
 * formats, every key, every kind of mistake, prop-check, the samples.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "elapsed.h"
#include "config.h"
#include "config_table.h"

/* The smallest complete database node; tests append what they examine. */
static const char BASE[] = "db.user=efm\n"
                           "db.password.encrypted=\n"
                           "db.port=5432\n"
                           "db.database=postgres\n"
                           "bind.address=127.0.0.1:7800\n";
#define BASE_LINES 5

static char tmpdir[64];

/* rm_entry is nftw's callback for removing a tree. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/efm-test-config-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* put writes tmpdir/name with the given bytes. */
static void put(const char *name, const char *data, size_t len)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* put_str writes a NUL-terminated text. */
static void put_str(const char *name, const char *text)
{
	put(name, text, strlen(text));
}

/* dump prints the problems, so a failing test says why. */
static void dump(const struct problems *pr)
{
	for (size_t i = 0; i < pr->n; i++)
		print_message("problem: %s\n", pr->msgs[i]);
}

/* has_problem: some problem contains both fragments (b may be NULL). */
static bool has_problem(const struct problems *pr, const char *a, const char *b)
{
	for (size_t i = 0; i < pr->n; i++) {
		if (strstr(pr->msgs[i], a) != NULL && (b == NULL || strstr(pr->msgs[i], b) != NULL))
			return true;
	}
	dump(pr);
	return false;
}

/* load_props writes c.properties = BASE + extra and loads cluster "c". */
static struct efm_config *load_props(const char *extra, struct problems *pr)
{
	char text[8192];
	snprintf(text, sizeof(text), "%s%s", BASE, extra);
	put_str("c.properties", text);
	struct efm_config *cfg = config_load(tmpdir, "c", pr);
	assert_non_null(cfg);
	return cfg;
}

/* expect_one loads BASE + extra and requires exactly one problem with the fragments. */
static void expect_one(const char *extra, const char *a, const char *b)
{
	struct problems pr = {0};
	struct efm_config *cfg = load_props(extra, &pr);
	if (pr.n != 1) {
		print_message("input:\n%s\n", extra);
		dump(&pr);
	}
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, a, b));
	config_free(cfg);
	problems_free(&pr);
}

/* data_dir: where the committed fixtures live. */
static const char *data_dir(void)
{
	const char *d = getenv("EFM_TEST_DATA");
	assert_non_null(d);
	return d;
}

/* The fixture good.properties loads without problems into the expected fields. */
static void test_good_properties(void **state)
{
	struct problems pr = {0};
	struct efm_config *cfg = config_load(data_dir(), "good", &pr);

	assert_non_null(cfg);
	dump(&pr);
	assert_int_equal(pr.n, 0);
	assert_string_equal(cfg->cluster, "good");
	assert_non_null(strstr(cfg->props_path, "good.properties"));
	assert_true(cfg->auto_failover);
	assert_false(cfg->auto_reconfigure);
	assert_string_equal(cfg->db_user, "efm");
	assert_string_equal(cfg->db_password_encrypted, "0a1b2c3d4e5f");
	assert_int_equal(cfg->db_port, 5433);
	assert_string_equal(cfg->db_database, "postgres");
	assert_string_equal(cfg->db_host, "192.168.2.54"); /* from bind.address */
	assert_int_equal(cfg->db_reuse_connection_count, 3);
	assert_true(cfg->jdbc_ssl);
	assert_int_equal(cfg->admin_port, 7809);
	assert_int_equal(cfg->local_period_s, 5);
	assert_int_equal(cfg->local_timeout_s, 30);
	assert_int_equal(cfg->local_timeout_final_s, 7);
	assert_int_equal(cfg->remote_timeout_s, 8);
	assert_int_equal(cfg->jgroups_max_tries, 4);
	assert_int_equal(cfg->jgroups_timeout_ms, 2500);
	assert_int_equal(cfg->node_timeout_s, 10); /* 2500 ms x 4 */
	assert_string_equal(cfg->user_email, "dba@example.com oncall@example.com");
	assert_string_equal(cfg->bind.host, "192.168.2.54");
	assert_int_equal(cfg->bind.port, 7800);
	assert_false(cfg->is_witness); /* "is.witness=" takes the default */
	assert_string_equal(cfg->db_recovery_conf_dir, "/var/lib/postgresql/15/main");
	assert_string_equal(cfg->virtual_ip, "192.168.2.200");
	assert_string_equal(cfg->virtual_ip_interface, "eth0:1");
	assert_int_equal(cfg->virtual_ip_prefix, 22);
	assert_true(config_vip_enabled(cfg));
	assert_string_equal(cfg->ping_server_ip, "192.168.2.1");
	assert_string_equal(cfg->ping_server_command, "/bin/ping -q -c1 -w2");
	assert_string_equal(cfg->script_fence, "/usr/local/bin/fence");
	assert_string_equal(cfg->script_db_failure, "");
	assert_int_equal(cfg->jgroups_loglevel, EFM_FINE);
	assert_int_equal(cfg->efm_loglevel, EFM_WARNING);
	assert_int_equal(cfg->notification_level, EFM_SEV_WARNING);
	assert_int_equal(cfg->notification_rate_limit, 7);
	/* Untouched keys have their defaults; unset strings are "". */
	assert_int_equal(cfg->script_timeout_s, 60);
	assert_string_equal(cfg->notification_smtp_url, "smtp://localhost:25");
	assert_string_equal(cfg->notification_webhook_url, "");
	assert_string_equal(cfg->peer_key_file, "");
	assert_non_null(strstr(cfg->from_email, "efm@"));
	/* The .nodes file. */
	assert_int_equal(cfg->n_nodes, 4);
	assert_string_equal(cfg->nodes[0].host, "192.168.2.54");
	assert_string_equal(cfg->nodes[2].host, "192.168.2.56");
	assert_string_equal(cfg->nodes[3].host, "fd00::7");
	assert_int_equal(cfg->nodes[3].port, 7800);
	config_free(cfg);
}

/* The YAML fixture, with nested maps and later-version names, gives the same settings. */
static void test_good_yaml(void **state)
{
	struct problems pr = {0};
	struct efm_config *cfg = config_load(data_dir(), "goody", &pr);

	assert_non_null(cfg);
	dump(&pr);
	assert_int_equal(pr.n, 0);
	assert_non_null(strstr(cfg->props_path, "goody.yaml"));
	assert_string_equal(cfg->db_user, "efm");
	assert_string_equal(cfg->db_password_encrypted, "0a1b2c3d4e5f");
	assert_int_equal(cfg->db_port, 5433);
	assert_string_equal(cfg->db_recovery_conf_dir, "/var/lib/postgresql/15/main");
	assert_int_equal(cfg->local_timeout_final_s, 7);
	assert_int_equal(cfg->node_timeout_s, 10);
	assert_string_equal(cfg->user_email, "dba@example.com, oncall@example.com");
	assert_string_equal(cfg->virtual_ip, "192.168.2.200");
	assert_string_equal(cfg->virtual_ip_interface, "eth0:1");
	assert_int_equal(cfg->virtual_ip_prefix, 22);
	assert_string_equal(cfg->ping_server_ip, "192.168.2.1");
	assert_string_equal(cfg->ping_server_command, "/bin/ping -q -c1 -w2");
	assert_string_equal(cfg->script_master_isolated, "/usr/local/bin/isolated");
	assert_int_equal(cfg->notification_rate_limit, 7);
	assert_int_equal(cfg->n_nodes, 0);
	config_free(cfg);
}

/* A witness needs no db.* keys; a missing .nodes file is an empty list. */
static void test_witness(void **state)
{
	struct problems pr = {0};
	struct efm_config *cfg = config_load(data_dir(), "wit", &pr);

	assert_non_null(cfg);
	dump(&pr);
	assert_int_equal(pr.n, 0);
	assert_true(cfg->is_witness);
	assert_string_equal(cfg->bind.host, "fd00::9");
	assert_string_equal(cfg->db_user, "");
	assert_int_equal(cfg->n_nodes, 0);
	assert_int_equal(cfg->node_timeout_s, 40); /* 5000 ms x 8 */
	config_free(cfg);
}

/* A database node names each missing required key; a witness still needs bind.address. */
static void test_required(void **state)
{
	struct problems pr = {0};
	put_str("c.properties", "db.user=\n");
	struct efm_config *cfg = config_load(tmpdir, "c", &pr);

	assert_int_equal(pr.n, 5);
	assert_true(has_problem(
	    &pr, "c.properties:1: db.user: required on a database node but empty", NULL));
	assert_true(has_problem(&pr, "c.properties: db.password.encrypted: required", "not set"));
	assert_true(has_problem(&pr, "c.properties: db.port: required", NULL));
	assert_true(has_problem(&pr, "c.properties: db.database: required", NULL));
	assert_true(has_problem(&pr, "c.properties: bind.address: required but not set", NULL));
	config_free(cfg);
	problems_free(&pr);

	put_str("c.properties", "is.witness=true\n");
	cfg = config_load(tmpdir, "c", &pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "bind.address: required but not set", NULL));
	config_free(cfg);
	problems_free(&pr);
}

/* An empty db.password.encrypted is accepted (.pgpass). */
static void test_empty_password(void **state)
{
	struct problems pr = {0};
	struct efm_config *cfg = load_props("", &pr);
	assert_int_equal(pr.n, 0);
	assert_string_equal(cfg->db_password_encrypted, "");
	config_free(cfg);
}

/* Unknown keys are reported with a suggestion when one is close. */
static void test_unknown_key(void **state)
{
	expect_one("db.usr=x\n", "c.properties:6: db.usr: unknown key (did you mean db.user?)",
	           NULL);
	expect_one("virtualip=10.0.0.1\n", "virtualip: unknown key (did you mean virtualIp?)",
	           NULL);
	expect_one("local.timout.final=3\n", "did you mean local.timeout.final?", NULL);
	expect_one("completely.different.thing=1\n", "completely.different.thing: unknown key",
	           NULL);
	struct problems pr = {0};
	struct efm_config *cfg = load_props("zzz=1\n", &pr);
	assert_int_equal(pr.n, 1);
	assert_null(strstr(pr.msgs[0], "did you mean"));
	config_free(cfg);
	problems_free(&pr);
}

/*
 * A file of 60,000 unknown keys: every problem is counted, only the first
 * are kept and printed, and the whole check stays quick (it took 23 s when
 * each key was kept and given a spelling suggestion).
 */
static void test_many_problems(void **state)
{
	enum { LINES = 60000 };
	size_t cap = LINES * 12 + sizeof(BASE);
	char *text = malloc(cap);
	assert_non_null(text);
	size_t used = (size_t)snprintf(text, cap, "%s", BASE);
	for (int i = 0; i < LINES; i++)
		used += (size_t)snprintf(text + used, cap - used, "u%05d=1\n", i);
	put("c.properties", text, used);
	free(text);

	struct timespec t0 = elapsed_start();
	struct problems pr = {0};
	struct efm_config *cfg = config_load(tmpdir, "c", &pr);
	assert_non_null(cfg);
	char *out = malloc(1 << 20);
	assert_non_null(out);
	FILE *f = fmemopen(out, 1 << 20, "w");
	assert_non_null(f);
	size_t n = config_prop_check(f, cfg, &pr);
	fclose(f);
	double took = elapsed_seconds(t0);

	assert_int_equal(n, LINES);
	assert_true(pr.n <= 50);
	assert_non_null(strstr(out, "Problems found: 60000\n"));
	assert_non_null(strstr(out, "c.properties:6: u00000: unknown key"));
	assert_null(strstr(out, "u00050: unknown key"));
	assert_non_null(strstr(out, "... and 59950 more problems\n"));
	if (took > 3.0)
		fail_msg("60000 unknown keys took %.1f s", took);
	free(out);
	config_free(cfg);
	problems_free(&pr);
}

/* Syntax problems of the .properties file reach config_load's list. */
static void test_syntax(void **state)
{
	expect_one("auto.failover false\n", "c.properties:6: auto.failover: missing '='", NULL);
	expect_one("db.service.owner=\"postgres\"\n",
	           "c.properties:6: db.service.owner: values must not be quoted", NULL);
}

/* Wrong types are reported with what would be right. */
static void test_types(void **state)
{
	expect_one("auto.failover=yes\n", "c.properties:6: auto.failover: \"yes\" is not a boolean",
	           "true or false");
	expect_one("local.period=ten\n", "local.period: \"ten\" is not a whole number", NULL);
	expect_one("local.period=1.5\n", "is not a whole number", NULL);
	expect_one("efm.loglevel=DEBUG\n", "efm.loglevel: \"DEBUG\" is not a log level", "FINEST");
	expect_one("notification.level=FINE\n", "notification.level: \"FINE\" is not a severity",
	           NULL);
	expect_one("script.fence=fence.sh\n", "script.fence: \"fence.sh\" is not an absolute path",
	           NULL);
	expect_one("user.email=dba at example.com\n", "user.email: \"dba\" is not a mail address",
	           NULL);
	expect_one("from.email=nobody\n", "from.email: \"nobody\" is not a mail address", NULL);
	expect_one("notification.smtp.url=mail.example.com\n", "is not an smtp://", NULL);
	expect_one("notification.webhook.url=ftp://x\n", "is not an http:// or https:// URL", NULL);
	expect_one("virtualIp=10.0.0.300\nvirtualIp.interface=eth0\nvirtualIp.netmask=255.0.0.0\n",
	           "virtualIp: \"10.0.0.300\" is not an IP address", NULL);
	expect_one("pingServerIp=bad host\n", "pingServerIp: \"bad host\" is not a host name",
	           NULL);
	expect_one("db.host=-x\n", "db.host: \"-x\" is not a host name", NULL);

	/* Types whose keys BASE already holds, or that a file cannot express, directly. */
	struct efm_config *cfg = calloc(1, sizeof(*cfg));
	char why[256];
	assert_non_null(cfg);
	assert_true(config_init_strings(cfg));
	assert_false(config_option_set(cfg, config_option_find("db.password.encrypted"), "secret!",
	                               why, sizeof(why)));
	assert_non_null(strstr(why, "efm encrypt"));
	assert_false(config_option_set(cfg, config_option_find("pingServerCommand"), "  ", why,
	                               sizeof(why)));
	assert_non_null(strstr(why, "names no command"));
	assert_false(config_option_set(cfg, config_option_find("virtualIp.interface"), "eth 0", why,
	                               sizeof(why)));
	assert_true(
	    config_option_set(cfg, config_option_find("auto.failover"), "FALSE", why, sizeof(why)));
	assert_false(cfg->auto_failover);
	config_free_strings(cfg);
	free(cfg);
}

/* Numbers outside their bounds name the bounds and the unit. */
static void test_range(void **state)
{
	expect_one("local.period=0\n", "c.properties:6: local.period: 0 is out of range",
	           "1..3600 s");
	expect_one("jgroups.timeout=99\n", "jgroups.timeout: 99 is out of range", "100..600000 ms");
	expect_one("notification.rate.limit=100000\n", "out of range", "1..10000 per minute");
	expect_one("db.reuse.connection.count=-1\n", "-1 is out of range", "0..1000000");
	expect_one("remote.timeout=99999999999999999999\n", "is not a whole number", NULL);
	expect_one("virtual.ip.prefix=129\n", "virtual.ip.prefix: \"129\" is not a prefix length",
	           NULL);
}

/* A key given twice, also under its alias, names the first line. */
static void test_duplicates(void **state)
{
	expect_one("db.port=5433\n",
	           "c.properties:6: db.port: duplicate key (first given on line 3)", NULL);
	expect_one("db.recovery.conf.dir=/a\ndb.data.dir=/b\n",
	           "c.properties:7: db.data.dir: duplicate key: db.recovery.conf.dir on line 6",
	           NULL);
	expect_one("ping.server.ip=10.0.0.1\npingServerIp=10.0.0.2\n",
	           "c.properties:7: pingServerIp: duplicate key: ping.server.ip on line 6", NULL);
}

/* bind.address needs an IP address and a port. */
static void test_bind_address(void **state)
{
	struct problems pr = {0};
	put_str("c.properties", "is.witness=true\nbind.address=192.168.2.54\n");
	struct efm_config *cfg = config_load(tmpdir, "c", &pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "c.properties:2: bind.address: \"192.168.2.54\" has no port",
	                        "IP:PORT"));
	config_free(cfg);
	problems_free(&pr);

	const char *bad[] = {"192.168.2.54:0",       "192.168.2.54:65536", "192.168.2.54:x",
	                     "db1.example.com:7800", "fd00::1:7800",       ":7800"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "is.witness=true\nbind.address=%s\n", bad[i]);
		put_str("c.properties", text);
		cfg = config_load(tmpdir, "c", &pr);
		assert_int_equal(pr.n, 1);
		assert_true(has_problem(&pr, "c.properties:2: bind.address:", NULL));
		config_free(cfg);
		problems_free(&pr);
	}
}

/*
 * An agent's address is its identity: the unspecified address (any
 * interface) is not one, in bind.address nor in the .nodes file.
 */
static void test_unspecified_address(void **state)
{
	const char *bad[] = {"0.0.0.0:7800", "[::]:7800", "[0:0::0]:7800", "[::ffff:0.0.0.0]:7800"};
	struct problems pr = {0};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "is.witness=true\nbind.address=%s\n", bad[i]);
		put_str("c.properties", text);
		struct efm_config *cfg = config_load(tmpdir, "c", &pr);
		if (pr.n != 1)
			print_message("bind.address=%s\n", bad[i]);
		assert_int_equal(pr.n, 1);
		assert_true(
		    has_problem(&pr, "c.properties:2: bind.address:", "unspecified address"));
		assert_true(has_problem(&pr, "identity", NULL));
		config_free(cfg);
		problems_free(&pr);
	}
	put_str("c.nodes", "10.0.0.1:7800 0.0.0.0:7800\n[::]:7800\n");
	struct efm_config *cfg = load_props("", &pr);
	assert_int_equal(pr.n, 2);
	assert_true(has_problem(&pr, "c.nodes:1: \"0.0.0.0:7800\"", "unspecified address"));
	assert_true(has_problem(&pr, "c.nodes:2: \"[::]:7800\"", "unspecified address"));
	assert_int_equal(cfg->n_nodes, 1);
	config_free(cfg);
	problems_free(&pr);
	char path[256];
	snprintf(path, sizeof(path), "%s/c.nodes", tmpdir);
	unlink(path);
}

/* address_parse: host:port and [v6]:port, port 1..65535. */
static void test_parse_addr(void **state)
{
	struct efm_addr a;
	assert_true(address_parse("10.0.0.1:7800", &a));
	assert_string_equal(a.host, "10.0.0.1");
	assert_int_equal(a.port, 7800);
	assert_true(address_parse("[fe80::1]:1", &a));
	assert_string_equal(a.host, "fe80::1");
	assert_int_equal(a.port, 1);
	assert_true(address_parse("db1.example.com:65535", &a));
	assert_int_equal(a.port, 65535);
	assert_false(address_parse("10.0.0.1", &a));
	assert_false(address_parse("10.0.0.1:", &a));
	assert_false(address_parse("10.0.0.1:0", &a));
	assert_false(address_parse("10.0.0.1:65536", &a));
	assert_false(address_parse("10.0.0.1:123456", &a));
	assert_false(address_parse("10.0.0.1:-1", &a));
	assert_false(address_parse("fe80::1:7800", &a));
	assert_false(address_parse("[fe80::1]7800", &a));
	assert_false(address_parse("[]:7800", &a));
	assert_false(address_parse(":7800", &a));
	assert_false(address_parse("a b:7800", &a));
	assert_false(address_parse(NULL, &a));
}

/* The .nodes file: comments, blanks, duplicates; bad entries named by line. */
static void test_nodes(void **state)
{
	struct problems pr = {0};
	put_str("c.nodes", "# list\r\n10.0.0.1:7800\t10.0.0.2:7800 # two\n\n10.0.0.1:7800\n"
	                   "10.0.0.3\nhost.example.com:7800 10.0.0.4:99999\n");
	struct efm_config *cfg = load_props("", &pr);
	assert_int_equal(pr.n, 3);
	assert_true(has_problem(&pr, "c.nodes:5: \"10.0.0.3\": not a node address", NULL));
	assert_true(has_problem(&pr, "c.nodes:6: \"host.example.com:7800\"", NULL));
	assert_true(has_problem(&pr, "c.nodes:6: \"10.0.0.4:99999\"", NULL));
	assert_int_equal(cfg->n_nodes, 2);
	config_free(cfg);
	problems_free(&pr);

	/* CR alone ends lines too; a comment ends at one. */
	put_str("c.nodes", "# list\r10.0.0.1:7800 # one\r\r10.0.0.9\r\n10.0.0.2:7800\r");
	cfg = load_props("", &pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "c.nodes:4: \"10.0.0.9\": not a node address", NULL));
	assert_int_equal(cfg->n_nodes, 2);
	config_free(cfg);
	problems_free(&pr);

	put_str("c.nodes", "");
	cfg = load_props("", &pr);
	assert_int_equal(pr.n, 0);
	assert_int_equal(cfg->n_nodes, 0);
	config_free(cfg);

	put("c.nodes", "10.0.0.1:7800\0\n", 15);
	cfg = load_props("", &pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "c.nodes:1: contains a NUL byte", NULL));
	config_free(cfg);
	problems_free(&pr);
	char path[256];
	snprintf(path, sizeof(path), "%s/c.nodes", tmpdir);
	unlink(path);
}

/* A virtual IP is all three keys or none; netmasks must be contiguous. */
static void test_vip(void **state)
{
	expect_one("virtualIp=10.0.0.100\n", "c.properties: virtualIp: a virtual IP needs",
	           "missing: virtualIp.interface virtualIp.netmask");
	expect_one("virtualIp.interface=eth0\nvirtualIp.netmask=255.255.255.0\n",
	           "virtualIp: a virtual IP needs", "missing: virtualIp");
	expect_one(
	    "virtualIp=10.0.0.100\nvirtualIp.interface=eth0\nvirtualIp.netmask=255.0.255.0\n",
	    "c.properties:8: virtualIp.netmask: \"255.0.255.0\" is not a netmask", NULL);
	expect_one("virtualIp=10.0.0.100\nvirtualIp.interface=eth0\nvirtual.ip.prefix=33\n",
	           "virtual.ip.prefix: 33 is too long for the IPv4 address", NULL);
	expect_one("virtualIp=127.0.0.1\nvirtualIp.interface=eth0\nvirtual.ip.prefix=8\n",
	           "virtualIp: 127.0.0.1 is this node's bind.address", NULL);

	struct problems pr = {0};
	struct efm_config *cfg = load_props(
	    "virtual.ip=fd00::100\nvirtual.ip.interface=eth0\nvirtual.ip.prefix=64\n", &pr);
	assert_int_equal(pr.n, 0);
	assert_true(config_vip_enabled(cfg));
	assert_int_equal(cfg->virtual_ip_prefix, 64);
	config_free(cfg);
	cfg = load_props("", &pr);
	assert_false(config_vip_enabled(cfg));
	assert_int_equal(cfg->virtual_ip_prefix, -1);
	config_free(cfg);
	/* Dotted masks become prefix lengths. */
	static const struct {
		const char *mask;
		int prefix;
	} masks[] = {
	    {"255.255.255.255", 32}, {"255.255.255.0", 24}, {"255.128.0.0", 9}, {"0.0.0.0", 0}};
	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text),
		         "virtualIp=10.0.0.100\nvirtualIp.interface=eth0\nvirtualIp.netmask=%s\n",
		         masks[i].mask);
		cfg = load_props(text, &pr);
		assert_int_equal(pr.n, 0);
		assert_int_equal(cfg->virtual_ip_prefix, masks[i].prefix);
		config_free(cfg);
	}
}

/* Rules between keys say the relationship. */
static void test_cross_rules(void **state)
{
	expect_one("local.period=30\nlocal.timeout=20\n",
	           "c.properties: local.timeout: 20 s is shorter than local.period (30 s)",
	           "must be at least local.period");
	expect_one("pingServerIp=127.0.0.1\n", "pingServerIp: 127.0.0.1 belongs to the cluster",
	           NULL);
	expect_one("notification.smtp.url=smtps://m:465\nnotification.smtp.starttls=true\n",
	           "notification.smtp.starttls", NULL);
	expect_one("notification.smtp.password=pw\n", "notification.smtp.password: given without",
	           NULL);
	/* A witness does not monitor a database, so its local.* do not matter. */
	struct problems pr = {0};
	put_str("c.properties", "is.witness=true\nbind.address=10.0.0.1:7800\nlocal.period=30\n"
	                        "local.timeout=20\n");
	struct efm_config *cfg = config_load(tmpdir, "c", &pr);
	assert_int_equal(pr.n, 0);
	config_free(cfg);
}

/* node.timeout wins over the jgroups pair; otherwise it is derived, rounded up. */
static void test_node_timeout(void **state)
{
	struct problems pr = {0};
	struct efm_config *cfg = load_props("jgroups.timeout=1500\njgroups.max.tries=3\n", &pr);
	assert_int_equal(pr.n, 0);
	assert_int_equal(cfg->node_timeout_s, 5); /* 4.5 s, rounded up */
	config_free(cfg);
	cfg = load_props("jgroups.timeout=1500\nnode.timeout=25\n", &pr);
	assert_int_equal(pr.n, 0);
	assert_int_equal(cfg->node_timeout_s, 25);
	config_free(cfg);
}

/*
 * The node timeout has a floor: an isolated master must be able to notice
 * that it lost the leader (up to twice the Raft election timeout, which is
 * at least 0.5 s) within half the node timeout.  So at least 2 s, given
 * directly or derived from the jgroups pair, and the refusal says why.
 */
static void test_node_timeout_floor(void **state)
{
	struct problems pr = {0};
	expect_one("node.timeout=1\n", "c.properties:6: node.timeout: 1 is out of range",
	           "isolated master");
	struct efm_config *cfg = load_props("node.timeout=2\n", &pr);
	assert_int_equal(pr.n, 0);
	assert_int_equal(cfg->node_timeout_s, 2);
	config_free(cfg);

	cfg = load_props("jgroups.timeout=100\njgroups.max.tries=10\n", &pr);
	dump(&pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "jgroups.timeout x jgroups.max.tries", "1 s"));
	assert_true(has_problem(&pr, "at least 2 s", "isolated master"));
	config_free(cfg);
	problems_free(&pr);
	/* node.timeout wins over a pair that would be too short. */
	cfg = load_props("jgroups.timeout=100\njgroups.max.tries=10\nnode.timeout=3\n", &pr);
	assert_int_equal(pr.n, 0);
	config_free(cfg);

	/* The sample file explains the floor where node.timeout is described. */
	char *sample = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sample, &len);
	assert_non_null(f);
	assert_int_equal(config_sample_properties(f), 0);
	fclose(f);
	const char *row = strstr(sample, "\nnode.timeout=");
	const char *doc = strstr(sample, "whole number, 2..86400 s");
	assert_non_null(row);
	assert_non_null(doc);
	assert_true(doc < row);
	free(sample);
}

/* Derived defaults: db.host from bind.address, from.email from the host name. */
static void test_derived(void **state)
{
	struct problems pr = {0};
	struct efm_config *cfg = load_props("db.host=localhost\nfrom.email=a@b.c\n", &pr);
	assert_int_equal(pr.n, 0);
	assert_string_equal(cfg->db_host, "localhost");
	assert_string_equal(cfg->from_email, "a@b.c");
	config_free(cfg);
	cfg = load_props("", &pr);
	assert_string_equal(cfg->db_host, "127.0.0.1");
	char host[256], want[300];
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	snprintf(want, sizeof(want), "efm@%s", host);
	assert_string_equal(cfg->from_email, want);
	config_free(cfg);
}

/* Every row's default parses, and every key accepts its example value. */
static void test_every_key(void **state)
{
	char text[16384], why[256];
	size_t used = 0;

	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *opt = config_table_get(i);
		struct efm_config *scratch = calloc(1, sizeof(*scratch));
		assert_non_null(scratch);
		assert_true(config_init_strings(scratch));
		assert_non_null(opt->example);
		assert_true(opt->alias_of != NULL || opt->comment != NULL);
		if (opt->def != NULL &&
		    !config_option_set(scratch, opt, opt->def, why, sizeof(why)))
			fail_msg("%s: default %s: %s", opt->name, opt->def, why);
		if (!config_option_set(scratch, opt, opt->example, why, sizeof(why)))
			fail_msg("%s: example %s: %s", opt->name, opt->example, why);
		config_free_strings(scratch);
		free(scratch);
		if (opt->alias_of == NULL)
			used += (size_t)snprintf(text + used, sizeof(text) - used, "%s=%s\n",
			                         opt->name, opt->example);
	}
	assert_true(used < sizeof(text));
	/* All keys at once (no BASE: the examples cover the required keys). */
	struct problems pr = {0};
	put_str("c.properties", text);
	struct efm_config *cfg = config_load(tmpdir, "c", &pr);
	dump(&pr);
	assert_int_equal(pr.n, 0);
	assert_true(cfg->is_witness);
	assert_int_equal(cfg->node_timeout_s, 30);
	assert_string_equal(cfg->notification_smtp_password, "secret");
	config_free(cfg);

	/* Each alias alone, in place of its 2.0 name. */
	for (size_t i = 0; i < config_table_size(); i++) {
		const struct config_option *opt = config_table_get(i);
		if (opt->alias_of == NULL)
			continue;
		snprintf(text, sizeof(text), "%s=%s\n", opt->name, opt->example);
		cfg = load_props(text, &pr);
		/* A lone VIP key is half a VIP; that is the only problem allowed. */
		for (size_t k = 0; k < pr.n; k++)
			assert_non_null(strstr(pr.msgs[k], "a virtual IP needs"));
		char have[256];
		config_option_format(cfg, config_option_canonical(opt), have, sizeof(have));
		assert_true(have[0] != '\0');
		config_free(cfg);
		problems_free(&pr);
	}
	assert_null(config_option_find("no.such.key"));
	assert_string_equal(config_type_name(CONFIG_T_ADDR), "IP:port");
}

/* Both files present is a problem; neither is a problem naming both. */
static void test_which_file(void **state)
{
	struct problems pr = {0};
	char path[256];

	snprintf(path, sizeof(path), "%s/c.properties", tmpdir);
	unlink(path);
	struct efm_config *cfg = config_load(tmpdir, "c", &pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "c.properties: no such file", "c.yaml"));
	config_free(cfg);
	problems_free(&pr);

	put_str("c.yaml", "db:\n  user: efm\n");
	cfg = load_props("", &pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "c.properties: ", "c.yaml exists too"));
	assert_string_equal(cfg->db_user, "efm");
	config_free(cfg);
	problems_free(&pr);

	unlink(path);
	cfg = config_load(tmpdir, "c", &pr);
	assert_non_null(strstr(cfg->props_path, "c.yaml"));
	assert_true(has_problem(&pr, "c.yaml: db.port: required", NULL));
	config_free(cfg);
	problems_free(&pr);
	snprintf(path, sizeof(path), "%s/c.yaml", tmpdir);
	unlink(path);
}

/* YAML mistakes come out as "FILE:LINE: key: ...", duplicates included. */
static void test_yaml_problems(void **state)
{
	struct problems pr = {0};
	put_str("y.yaml", "db:\n  user: efm\n  port: 5432\n  database: x\n  password.encrypted:\n"
	                  "bind.address: 10.0.0.1:7800\ndb.port: 5433\nauto.failover: yes\n"
	                  "local: {period: 0}\n");
	struct efm_config *cfg = config_load(tmpdir, "y", &pr);
	assert_int_equal(pr.n, 3);
	assert_true(
	    has_problem(&pr, "y.yaml:7: db.port: duplicate key (first given on line 3)", NULL));
	assert_true(has_problem(&pr, "y.yaml:8: auto.failover: \"yes\" is not a boolean", NULL));
	assert_true(has_problem(&pr, "y.yaml:9: local.period: 0 is out of range", NULL));
	config_free(cfg);
	problems_free(&pr);
	char path[256];
	snprintf(path, sizeof(path), "%s/y.yaml", tmpdir);
	unlink(path);
}

/* Absurd inputs: CRLF + BOM work; binary files, directories and bad names do not crash. */
static void test_absurd(void **state)
{
	struct problems pr = {0};
	char text[1024];

	snprintf(text, sizeof(text), "\xef\xbb\xbf%s", BASE);
	for (char *p = text, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 2) {
		memmove(nl + 1, nl, strlen(nl) + 1);
		*nl = '\r';
	}
	put_str("c.properties", text);
	struct efm_config *cfg = config_load(tmpdir, "c", &pr);
	dump(&pr);
	assert_int_equal(pr.n, 0);
	assert_string_equal(cfg->db_user, "efm");
	assert_int_equal(cfg->bind.port, 7800);
	config_free(cfg);

	unsigned char junk[4096];
	srand(42);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)rand();
	put("c.properties", (const char *)junk, sizeof(junk));
	cfg = config_load(tmpdir, "c", &pr);
	assert_non_null(cfg);
	assert_true(pr.n >= 1);
	assert_true(has_problem(&pr, "c.properties:", "text"));
	assert_string_equal(cfg->db_user, "");
	assert_true(cfg->auto_failover); /* defaults in place */
	config_free(cfg);
	problems_free(&pr);

	char path[256];
	snprintf(path, sizeof(path), "%s/c.properties", tmpdir);
	unlink(path);
	assert_int_equal(mkdir(path, 0700), 0);
	cfg = config_load(tmpdir, "c", &pr);
	assert_true(has_problem(&pr, "c.properties: is a directory", NULL));
	config_free(cfg);
	problems_free(&pr);
	rmdir(path);

	cfg = config_load(tmpdir, "../etc/passwd", &pr);
	assert_int_equal(pr.n, 1);
	assert_true(has_problem(&pr, "is not a usable cluster name", NULL));
	assert_non_null(cfg->from_email);
	config_free(cfg);
	problems_free(&pr);

	/* A long line in the middle does not hide the lines around it. */
	char *big = malloc(20000);
	assert_non_null(big);
	int n = snprintf(big, 20000, "%sscript.fence=/", BASE);
	memset(big + n, 'a', 10000);
	snprintf(big + n + 10000, 100, "\nlocal.period=0\n");
	put_str("c.properties", big);
	free(big);
	cfg = config_load(tmpdir, "c", &pr);
	assert_int_equal(pr.n, 2);
	assert_true(has_problem(&pr, "c.properties:6: line is", NULL));
	assert_true(has_problem(&pr, "c.properties:7: local.period", NULL));
	config_free(cfg);
	problems_free(&pr);
}

/* capture runs prop-check into a string. */
static size_t capture(const struct efm_config *cfg, const struct problems *pr, char *buf,
                      size_t len)
{
	FILE *f = fmemopen(buf, len, "w");
	assert_non_null(f);
	size_t n = config_prop_check(f, cfg, pr);
	fclose(f);
	return n;
}

/* prop-check prints the guide's report, then the problems, and counts them. */
static void test_prop_check(void **state)
{
	struct problems pr = {0};
	char out[16384];
	struct efm_config *cfg = config_load(data_dir(), "good", &pr);

	assert_int_equal(capture(cfg, &pr, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "Agents: 192.168.2.54:7800 192.168.2.55:7800 "
	                            "192.168.2.56:7800 [fd00::7]:7800\n"));
	assert_non_null(strstr(out, "Binding address: 192.168.2.54\n"));
	assert_non_null(strstr(out, "I am witness node: false\n"));
	assert_non_null(strstr(out, "Cluster name: good\n"));
	assert_non_null(strstr(out, "User email: dba@example.com oncall@example.com\n"));
	assert_non_null(strstr(out, "VIP: 192.168.2.200/22 on eth0:1\n"));
	assert_non_null(strstr(out, "Automatic failover set to: true\n"));
	assert_non_null(strstr(out, "Network adapters:\n  lo\n"));
	assert_non_null(strstr(out, "127.0.0.1\n"));
	assert_non_null(strstr(out, "No problems found.\n"));
	config_free(cfg);

	cfg = load_props("local.period=0\nfoo=1\n", &pr);
	assert_int_equal(capture(cfg, &pr, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "Problems found: 2\n"));
	assert_non_null(strstr(out, "c.properties:6: local.period: 0 is out of range"));
	assert_non_null(strstr(out, "foo: unknown key"));
	assert_null(strstr(out, "No problems found"));
	config_free(cfg);
	problems_free(&pr);
}

/* A reload reports keys that need a restart; shared text lists the keys nodes must agree on. */
static void test_reload_and_shared(void **state)
{
	struct problems pr = {0};
	struct efm_config *a = load_props("efm.loglevel=FINE\n", &pr);
	put_str("c.properties", "db.user=efm\ndb.password.encrypted=ab\ndb.port=5433\n"
	                        "db.database=postgres\nbind.address=127.0.0.1:7800\n"
	                        "efm.loglevel=SEVERE\n");
	struct efm_config *b = config_load(tmpdir, "c", &pr);
	dump(&pr);
	assert_int_equal(pr.n, 0);

	assert_int_equal(config_restart_changes(a, b, &pr), 2);
	assert_true(has_problem(&pr, "db.port: changed from \"5432\" to \"5433\"", "restart"));
	assert_true(has_problem(&pr, "db.password.encrypted: changed;", NULL));
	assert_false(strstr(pr.msgs[0], "loglevel") || strstr(pr.msgs[1], "loglevel"));
	problems_free(&pr);

	char sa[4096], sb[4096];
	assert_true(config_shared_text(a, sa, sizeof(sa)) > 0);
	assert_true(config_shared_text(b, sb, sizeof(sb)) > 0);
	assert_non_null(strstr(sa, "db.port=5432\n"));
	assert_non_null(strstr(sa, "node.timeout=40\n"));
	assert_non_null(strstr(sa, "auto.failover=true\n"));
	assert_null(strstr(sa, "password"));
	assert_string_not_equal(sa, sb);
	assert_int_equal(config_shared_text(a, sa, 10), -ENOSPC);
	config_free(a);
	config_free(b);
}

/* read_all reads a whole file into a malloc'ed string. */
static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	char *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

/* The committed conf/ samples equal what config_write_samples writes. */
static void test_samples(void **state)
{
	char path[512], conf[512];

	assert_int_equal(config_write_samples(tmpdir), 0);
	const char *names[] = {"efm.properties.in", "efm.nodes.in"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		snprintf(conf, sizeof(conf), "%s/../../../conf/%s", data_dir(), names[i]);
		char *made = read_all(path), *committed = read_all(conf);
		assert_non_null(made);
		if (committed == NULL)
			fail_msg("%s is missing; copy it from efm sample-config", conf);
		if (strcmp(made, committed) != 0)
			fail_msg("%s differs from the option table: regenerate it with 'efm "
			         "sample-config conf'",
			         conf);
		free(made);
		free(committed);
	}
	/*
	 * The sample, copied as a cluster's file, has no problem but the unset
	 * required keys (the empty password is allowed).
	 */
	snprintf(path, sizeof(path), "%s/efm.properties.in", tmpdir);
	snprintf(conf, sizeof(conf), "%s/s.properties", tmpdir);
	assert_int_equal(rename(path, conf), 0);
	struct problems pr = {0};
	struct efm_config *cfg = config_load(tmpdir, "s", &pr);
	assert_int_equal(pr.n, 4);
	for (size_t i = 0; i < pr.n; i++)
		assert_non_null(strstr(pr.msgs[i], "required"));
	assert_int_equal(cfg->local_period_s, 10);
	config_free(cfg);
	problems_free(&pr);
	/* Writing into a missing directory fails cleanly. */
	assert_true(config_write_samples("/nonexistent/dir") < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_properties),
	    cmocka_unit_test(test_good_yaml),
	    cmocka_unit_test(test_witness),
	    cmocka_unit_test(test_required),
	    cmocka_unit_test(test_empty_password),
	    cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_many_problems),
	    cmocka_unit_test(test_syntax),
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_range),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_bind_address),
	    cmocka_unit_test(test_unspecified_address),
	    cmocka_unit_test(test_parse_addr),
	    cmocka_unit_test(test_nodes),
	    cmocka_unit_test(test_vip),
	    cmocka_unit_test(test_cross_rules),
	    cmocka_unit_test(test_node_timeout),
	    cmocka_unit_test(test_node_timeout_floor),
	    cmocka_unit_test(test_derived),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_which_file),
	    cmocka_unit_test(test_yaml_problems),
	    cmocka_unit_test(test_absurd),
	    cmocka_unit_test(test_prop_check),
	    cmocka_unit_test(test_reload_and_shared),
	    cmocka_unit_test(test_samples),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
