/*
 * cli_local.c - the efm subcommands that work without an agent: prop-check,
 * encrypt and the hidden sample-config used by the build.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "crypt.h"
#include "preflight.h"

#define PASSWORD_LINE_MAX 512

/* cli_prop_check validates CLUSTER's files; 0 only when nothing is wrong. */
int cli_prop_check(const struct cli_ctx *ctx, int argc, char **argv)
{
	const char *cluster = argv[0];
	if (!cli_valid_cluster(cluster))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", cluster);
	struct problems pr = {0};
	/* The very checks the agent makes before it starts. */
	struct efm_config *cfg = preflight_load(ctx->config_dir, cluster, NULL, 0, &pr);
	if (cfg == NULL) {
		problems_free(&pr);
		cli_error("out of memory loading the configuration of cluster %s", cluster);
		return CLI_EXIT_FAIL;
	}
	size_t problems = config_prop_check(stdout, cfg, &pr);
	config_free(cfg);
	problems_free(&pr);
	return problems == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* cli_sample_config writes the sample files into DIR (run by the build). */
int cli_sample_config(const struct cli_ctx *ctx, int argc, char **argv)
{
	int rc = config_write_samples(argv[0]);
	if (rc < 0) {
		cli_error("cannot write the sample configuration to %s: %s", argv[0],
		          strerror(-rc));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/*
 * The terminal state to restore if a signal arrives while echo is off.  A
 * process-wide variable because a signal handler can reach nothing else.
 */
static struct {
	int fd;
	struct termios saved;
	volatile sig_atomic_t active;
} tty_restore = {.fd = -1};

/* on_signal_restore puts echo back and dies of the same signal. */
static void on_signal_restore(int sig)
{
	if (tty_restore.active)
		tcsetattr(tty_restore.fd, TCSAFLUSH, &tty_restore.saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* read_line reads one line from f into buf without its newline; false on EOF or overlong. */
static bool read_line(FILE *f, char *buf, size_t size)
{
	if (fgets(buf, (int)size, f) == NULL)
		return false;
	size_t len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n') {
		buf[--len] = '\0';
		if (len > 0 && buf[len - 1] == '\r')
			buf[--len] = '\0';
		return true;
	}
	return feof(f) != 0; /* a last line without newline is fine; an overlong one is not */
}

/* read_password_tty prompts on the terminal with echo off. */
static bool read_password_tty(FILE *tty, const char *prompt, char *buf, size_t size)
{
	int fd = fileno(tty);
	struct termios t;
	fputs(prompt, tty);
	fflush(tty);
	if (tcgetattr(fd, &tty_restore.saved) != 0)
		return false;
	t = tty_restore.saved;
	t.c_lflag &= ~(tcflag_t)ECHO;
	t.c_lflag |= ECHONL;
	tty_restore.fd = fd;
	tty_restore.active = 1;
	if (tcsetattr(fd, TCSAFLUSH, &t) != 0) {
		tty_restore.active = 0;
		return false;
	}
	bool ok = read_line(tty, buf, size);
	tcsetattr(fd, TCSAFLUSH, &tty_restore.saved);
	tty_restore.active = 0;
	return ok;
}

/* read_password gets one answer, from the terminal or (scripted) from stdin. */
static bool read_password(FILE *tty, const char *prompt, char *buf, size_t size)
{
	if (tty != NULL)
		return read_password_tty(tty, prompt, buf, size);
	/* Not interactive: the prompt goes to stderr so stdout carries only the result. */
	fputs(prompt, stderr);
	fputc('\n', stderr);
	return read_line(stdin, buf, size);
}

/* ask_password runs the enter-twice dialogue; false (after saying why) on failure. */
static bool ask_password(const char *cluster, char *pw, size_t size)
{
	char again[PASSWORD_LINE_MAX];
	FILE *tty = NULL;
	bool ok = false;
	if (isatty(STDIN_FILENO))
		tty = fopen("/dev/tty", "r+");
	struct sigaction sa = {.sa_handler = on_signal_restore};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);

	printf("This will generate an encrypted form of the database password for the\n"
	       "db.password.encrypted property of cluster %s.\n\n",
	       cluster);
	fflush(stdout);
	if (!read_password(tty, "Please enter the password and hit enter: ", pw, size) ||
	    !read_password(tty, "Please enter the password again to confirm: ", again,
	                   sizeof(again))) {
		cli_error("no password read");
	} else if (strcmp(pw, again) != 0) {
		cli_error("the two passwords do not match; nothing was encrypted");
	} else {
		ok = true;
	}
	explicit_bzero(again, sizeof(again));
	if (tty != NULL)
		fclose(tty);
	return ok;
}

/* cli_encrypt prints db.password.encrypted for CLUSTER's properties file. */
int cli_encrypt(const struct cli_ctx *ctx, int argc, char **argv)
{
	const char *cluster = argv[0];
	char pw[PASSWORD_LINE_MAX];
	char hex[CRYPT_HEX_MAX];
	if (!cli_valid_cluster(cluster))
		return cli_usage_error(ctx, "invalid cluster name \"%s\"", cluster);

	const char *env = getenv("EFM_PASSWORD");
	if (env != NULL) {
		/* Automation: the password comes from the environment, no dialogue. */
		if (snprintf(pw, sizeof(pw), "%s", env) >= (int)sizeof(pw)) {
			cli_error("EFM_PASSWORD is too long");
			return CLI_EXIT_FAIL;
		}
	} else if (!ask_password(cluster, pw, sizeof(pw))) {
		explicit_bzero(pw, sizeof(pw));
		return CLI_EXIT_FAIL;
	}
	if (pw[0] == '\0') {
		cli_error("the password is empty");
		return CLI_EXIT_FAIL;
	}
	int rc = crypt_encrypt(cluster, pw, hex, sizeof(hex));
	explicit_bzero(pw, sizeof(pw));
	if (rc < 0) {
		cli_error("cannot encrypt the password: %s",
		          rc == -EINVAL ? "it is empty or longer than 255 bytes" : strerror(-rc));
		return CLI_EXIT_FAIL;
	}
	printf("\nThe encrypted password is: %s\n\n"
	       "Paste this line into the cluster's properties file:\n"
	       "db.password.encrypted=%s\n",
	       hex, hex);
	return CLI_EXIT_OK;
}
