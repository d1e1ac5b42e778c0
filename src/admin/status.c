/*
 * status.c - the cluster status model, its JSON and text renderings and the
 * exit code of `efm cluster-status`.
 *
 * The agent fills a model and ships it as JSON; the client reads it back and
 * renders text, so both views always show the same data.
 */
#include "status.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
    [NODE_MASTER] = "Master",
    [NODE_STANDBY] = "Standby",
    [NODE_WITNESS] = "Witness",
    [NODE_IDLE] = "Idle",
};

static const char *const state_names[] = {
    [STATE_UP] = "UP",
    [STATE_DOWN] = "DOWN",
    [STATE_UNKNOWN] = "UNKNOWN",
};

/* status_node_type_name returns the guide's spelling of a node type. */
const char *status_node_type_name(enum node_type t)
{
	if ((unsigned)t >= sizeof(type_names) / sizeof(type_names[0]))
		return "Unknown";
	return type_names[t];
}

/* status_up_state_name returns "UP", "DOWN" or "UNKNOWN". */
const char *status_up_state_name(enum up_state s)
{
	if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
		return "UNKNOWN";
	return state_names[s];
}

/* copy_str copies src into a fixed buffer, truncating; NULL counts as "". */
static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* status_add_node appends a zeroed node (agent and db UNKNOWN); NULL without memory. */
struct status_node *status_add_node(struct status_model *m)
{
	struct status_node *n = realloc(m->nodes, (m->n_nodes + 1) * sizeof(*n));
	if (n == NULL)
		return NULL;
	m->nodes = n;
	struct status_node *node = &m->nodes[m->n_nodes++];
	memset(node, 0, sizeof(*node));
	node->type = NODE_IDLE;
	node->agent = STATE_UNKNOWN;
	node->db = STATE_UNKNOWN;
	return node;
}

/* list_add appends a copy of s to a string list; drops it silently without memory. */
static void list_add(char ***list, size_t *n, const char *s)
{
	char *copy = strdup(s != NULL ? s : "");
	if (copy == NULL)
		return;
	char **grown = realloc(*list, (*n + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(copy);
		return;
	}
	grown[(*n)++] = copy;
	*list = grown;
}

/* list_free frees a string list and resets it. */
static void list_free(char ***list, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*n = 0;
}

/* status_add_allowed appends an address to the allowed node host list. */
void status_add_allowed(struct status_model *m, const char *addr)
{
	list_add(&m->allowed, &m->n_allowed, addr);
}

/* status_add_priority appends an address to the standby priority list. */
void status_add_priority(struct status_model *m, const char *addr)
{
	list_add(&m->priority, &m->n_priority, addr);
}

/* status_add_message appends a message (newest last). */
void status_add_message(struct status_model *m, const char *msg)
{
	list_add(&m->messages, &m->n_messages, msg);
}

/* status_free releases everything the model owns and zeroes it. */
void status_free(struct status_model *m)
{
	free(m->nodes);
	list_free(&m->allowed, &m->n_allowed);
	list_free(&m->priority, &m->n_priority);
	list_free(&m->messages, &m->n_messages);
	memset(m, 0, sizeof(*m));
}

/* ---- JSON ---- */

/* add_string_array adds key: [strings...] to obj; false without memory. */
static bool add_string_array(cJSON *obj, const char *key, char *const *list, size_t n)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, key);
	if (arr == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		cJSON *s = cJSON_CreateString(list[i]);
		if (s == NULL)
			return false;
		cJSON_AddItemToArray(arr, s);
	}
	return true;
}

/* node_to_json renders one node's six fields, in the guide's order. */
static cJSON *node_to_json(const struct status_node *n)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	if (cJSON_AddStringToObject(o, "type", status_node_type_name(n->type)) == NULL ||
	    cJSON_AddStringToObject(o, "agent", status_up_state_name(n->agent)) == NULL ||
	    cJSON_AddStringToObject(o, "db", status_up_state_name(n->db)) == NULL ||
	    cJSON_AddStringToObject(o, "info", n->info) == NULL ||
	    cJSON_AddStringToObject(o, "xlog", n->xlog) == NULL ||
	    cJSON_AddStringToObject(o, "xloginfo", n->xloginfo) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* status_to_json renders the guide's JSON object plus a "cluster" key; NULL without memory. */
cJSON *status_to_json(const struct status_model *m)
{
	cJSON *root = cJSON_CreateObject();
	if (root == NULL)
		return NULL;
	if (cJSON_AddStringToObject(root, "cluster", m->cluster) == NULL)
		goto fail;
	cJSON *nodes = cJSON_AddObjectToObject(root, "nodes");
	if (nodes == NULL)
		goto fail;
	/* cJSON keeps insertion order, which is the order the agent listed the nodes. */
	for (size_t i = 0; i < m->n_nodes; i++) {
		cJSON *n = node_to_json(&m->nodes[i]);
		if (n == NULL)
			goto fail;
		cJSON_AddItemToObject(nodes, m->nodes[i].address, n);
	}
	if (!add_string_array(root, "allowednodes", m->allowed, m->n_allowed) ||
	    !add_string_array(root, "failoverpriority", m->priority, m->n_priority) ||
	    !add_string_array(root, "messages", m->messages, m->n_messages))
		goto fail;
	if (m->failover.present) {
		const struct status_failover *f = &m->failover;
		cJSON *fo = cJSON_AddObjectToObject(root, "failover");
		if (fo == NULL || cJSON_AddStringToObject(fo, "phase", f->phase) == NULL ||
		    cJSON_AddStringToObject(fo, "candidate", f->candidate) == NULL ||
		    cJSON_AddNumberToObject(fo, "serial", (double)f->serial) == NULL ||
		    cJSON_AddStringToObject(fo, "master", f->master) == NULL ||
		    cJSON_AddStringToObject(fo, "decision", f->decision) == NULL)
			goto fail;
	}
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

/* parse_type maps a type name back to the enum; false when unknown. */
static bool parse_type(const char *s, enum node_type *out)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (strcmp(s, type_names[i]) == 0) {
			*out = (enum node_type)i;
			return true;
		}
	}
	return false;
}

/* parse_state maps "UP"/"DOWN"/"UNKNOWN" back to the enum; false otherwise. */
static bool parse_state(const char *s, enum up_state *out)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strcmp(s, state_names[i]) == 0) {
			*out = (enum up_state)i;
			return true;
		}
	}
	return false;
}

/* get_string returns the string member key of o, "" when absent, NULL when not a string. */
static const char *get_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (v == NULL)
		return "";
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* node_from_json reads one node object; false when a field is missing or malformed. */
static bool node_from_json(const cJSON *j, struct status_model *m)
{
	if (!cJSON_IsObject(j) || j->string == NULL)
		return false;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "agent");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "db");
	const char *info = get_string(j, "info");
	const char *xlog = get_string(j, "xlog");
	const char *xloginfo = get_string(j, "xloginfo");
	if (!cJSON_IsString(t) || !cJSON_IsString(a) || !cJSON_IsString(d) || info == NULL ||
	    xlog == NULL || xloginfo == NULL)
		return false;
	enum node_type type;
	enum up_state agent, db;
	if (!parse_type(t->valuestring, &type) || !parse_state(a->valuestring, &agent) ||
	    !parse_state(d->valuestring, &db))
		return false;
	struct status_node *n = status_add_node(m);
	if (n == NULL)
		return false;
	copy_str(n->address, sizeof(n->address), j->string);
	n->type = type;
	n->agent = agent;
	n->db = db;
	copy_str(n->info, sizeof(n->info), info);
	copy_str(n->xlog, sizeof(n->xlog), xlog);
	copy_str(n->xloginfo, sizeof(n->xloginfo), xloginfo);
	return true;
}

/* list_from_json reads an optional array of strings; false when it is not one. */
static bool list_from_json(const cJSON *root, const char *key, char ***list, size_t *n)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
	if (arr == NULL)
		return true;
	if (!cJSON_IsArray(arr))
		return false;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		if (!cJSON_IsString(it))
			return false;
		list_add(list, n, it->valuestring);
	}
	return true;
}

/* status_from_json fills m from j; on false m is left empty (freed). */
bool status_from_json(const cJSON *j, struct status_model *m)
{
	if (!cJSON_IsObject(j))
		return false;
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(j, "nodes");
	if (!cJSON_IsObject(nodes))
		return false;
	const char *cluster = get_string(j, "cluster");
	if (cluster == NULL)
		return false;
	copy_str(m->cluster, sizeof(m->cluster), cluster);
	const cJSON *it;
	cJSON_ArrayForEach(it, nodes)
	{
		if (!node_from_json(it, m))
			goto fail;
	}
	if (!list_from_json(j, "allowednodes", &m->allowed, &m->n_allowed) ||
	    !list_from_json(j, "failoverpriority", &m->priority, &m->n_priority) ||
	    !list_from_json(j, "messages", &m->messages, &m->n_messages))
		goto fail;
	const cJSON *fo = cJSON_GetObjectItemCaseSensitive(j, "failover");
	if (cJSON_IsObject(fo)) {
		struct status_failover *f = &m->failover;
		const char *phase = get_string(fo, "phase");
		const char *cand = get_string(fo, "candidate");
		const char *master = get_string(fo, "master");
		const char *decision = get_string(fo, "decision");
		const cJSON *serial = cJSON_GetObjectItemCaseSensitive(fo, "serial");
		f->present = true;
		copy_str(f->phase, sizeof(f->phase), phase != NULL ? phase : "?");
		copy_str(f->candidate, sizeof(f->candidate), cand != NULL ? cand : "");
		copy_str(f->master, sizeof(f->master), master != NULL ? master : "");
		copy_str(f->decision, sizeof(f->decision), decision != NULL ? decision : "");
		f->serial = cJSON_IsNumber(serial) && serial->valuedouble >= 0
		                ? (unsigned long long)serial->valuedouble
		                : 0;
	}
	return true;
fail:
	status_free(m);
	return false;
}

/* ---- the promotion verdict and the exit code ---- */

/*
 * xlog_parse reads a WAL location "X/Y" (two hex numbers of up to 8 digits)
 * into one 64-bit position; false for "" or anything else.
 */
static bool xlog_parse(const char *s, uint64_t *out)
{
	uint64_t part[2] = {0, 0};
	const char *p = s;
	for (int i = 0; i < 2; i++) {
		int digits = 0;
		for (; *p != '\0' && *p != '/'; p++, digits++) {
			char c = *p;
			unsigned v;
			if (c >= '0' && c <= '9')
				v = (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v = (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v = (unsigned)(c - 'A' + 10);
			else
				return false;
			part[i] = part[i] * 16 + v;
		}
		if (digits == 0 || digits > 8)
			return false;
		if (i == 0) {
			if (*p != '/')
				return false;
			p++;
		}
	}
	if (*p != '\0')
		return false;
	*out = (part[0] << 32) | part[1];
	return true;
}

/* What the Promote Status section concludes. */
enum sync_verdict {
	SYNC_OK,
	SYNC_NO_MASTER,
	SYNC_MANY_MASTERS,
	SYNC_NO_STANDBY,
	SYNC_UNKNOWN_XLOG,
	SYNC_BEHIND,
};

/* sync_verdict compares every standby's WAL location with the master's. */
static enum sync_verdict sync_verdict(const struct status_model *m)
{
	const struct status_node *master = NULL;
	size_t n_masters = 0, n_standbys = 0;
	for (size_t i = 0; i < m->n_nodes; i++) {
		if (m->nodes[i].type == NODE_MASTER) {
			master = &m->nodes[i];
			n_masters++;
		} else if (m->nodes[i].type == NODE_STANDBY) {
			n_standbys++;
		}
	}
	if (n_masters == 0)
		return SYNC_NO_MASTER;
	if (n_masters > 1)
		return SYNC_MANY_MASTERS;
	if (n_standbys == 0)
		return SYNC_NO_STANDBY;
	uint64_t mpos;
	if (!xlog_parse(master->xlog, &mpos))
		return SYNC_UNKNOWN_XLOG;
	bool behind = false;
	for (size_t i = 0; i < m->n_nodes; i++) {
		uint64_t pos;
		if (m->nodes[i].type != NODE_STANDBY)
			continue;
		if (!xlog_parse(m->nodes[i].xlog, &pos))
			return SYNC_UNKNOWN_XLOG;
		if (pos != mpos)
			behind = true;
	}
	return behind ? SYNC_BEHIND : SYNC_OK;
}

/* verdict_text is the sentence printed under Promote Status. */
static const char *verdict_text(enum sync_verdict v)
{
	switch (v) {
	case SYNC_OK:
		return "Standby database(s) in sync with master. It is safe to promote.";
	case SYNC_NO_MASTER:
		return "No master database in the cluster: nothing to compare the standbys with.";
	case SYNC_MANY_MASTERS:
		return "More than one node reports itself as master: do not promote.";
	case SYNC_NO_STANDBY:
		return "No standby database in the cluster: there is nothing to promote.";
	case SYNC_UNKNOWN_XLOG:
		return "The XLog location of one or more databases is unknown: cannot tell whether "
		       "the standbys are in sync.";
	case SYNC_BEHIND:
		break;
	}
	return "One or more standby databases are not in sync with the master database.";
}

/* status_exit_code applies the guide's list of reasons for a non-zero exit. */
int status_exit_code(const struct status_model *m)
{
	for (size_t i = 0; i < m->n_nodes; i++) {
		const struct status_node *n = &m->nodes[i];
		if (n->agent != STATE_UP)
			return 1;
		/* The guide counts an idle agent as a database problem. */
		if (n->type == NODE_IDLE)
			return 1;
		if ((n->type == NODE_MASTER || n->type == NODE_STANDBY) && n->db != STATE_UP)
			return 1;
	}
	/* The verdict covers: a master, a standby, known locations, all in sync. */
	return sync_verdict(m) == SYNC_OK ? 0 : 1;
}

/* ---- text ---- */

#define TABLE_COLS 5

/* A table printed with aligned columns; the last column is not padded. */
struct table {
	size_t ncols;
	size_t width[TABLE_COLS];
};

/* table_measure widens the columns to fit one row. */
static void table_measure(struct table *t, const char *const *cells)
{
	for (size_t c = 0; c < t->ncols; c++) {
		size_t len = strlen(cells[c]);
		if (len > t->width[c])
			t->width[c] = len;
	}
}

/* table_print writes one row, two spaces between columns, no trailing blanks. */
static void table_print(FILE *out, const struct table *t, const char *const *cells)
{
	size_t last = t->ncols - 1;
	while (last > 0 && cells[last][0] == '\0')
		last--;
	fputc('\t', out);
	for (size_t c = 0; c <= last; c++) {
		if (c < last)
			fprintf(out, "%-*s  ", (int)t->width[c], cells[c]);
		else
			fprintf(out, "%s", cells[c]);
	}
	fputc('\n', out);
}

/* print_list writes an address list on one indented line, or says it is empty. */
static void print_list(FILE *out, const char *title, char *const *list, size_t n)
{
	fprintf(out, "%s\n", title);
	if (n == 0) {
		fprintf(out, "\t(List is empty.)\n\n");
		return;
	}
	fputc('\t', out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s%s", i > 0 ? " " : "", list[i]);
	fprintf(out, "\n\n");
}

/* xlog_cell shows a WAL location, or UNKNOWN when the agent could not get one. */
static const char *xlog_cell(const struct status_node *n)
{
	return n->xlog[0] != '\0' ? n->xlog : "UNKNOWN";
}

/* render_agents writes the Cluster Status table. */
static void render_agents(FILE *out, const struct status_model *m)
{
	static const char *const head[] = {"Agent Type", "Address", "Agent", "DB", "Info"};
	struct table t = {.ncols = 5};
	table_measure(&t, head);
	for (size_t i = 0; i < m->n_nodes; i++) {
		const struct status_node *n = &m->nodes[i];
		const char *row[] = {status_node_type_name(n->type), n->address,
		                     status_up_state_name(n->agent), status_up_state_name(n->db),
		                     n->info};
		table_measure(&t, row);
	}
	fprintf(out, "Cluster Status: %s\n\n", m->cluster);
	table_print(out, &t, head);
	for (size_t i = 0; i < m->n_nodes; i++) {
		const struct status_node *n = &m->nodes[i];
		const char *row[] = {status_node_type_name(n->type), n->address,
		                     status_up_state_name(n->agent), status_up_state_name(n->db),
		                     n->info};
		table_print(out, &t, row);
	}
	fputc('\n', out);
}

/* in_promote_pass: the master first, then the standbys, each pass in model order. */
static bool in_promote_pass(const struct status_node *n, int pass)
{
	return pass == 0 ? n->type == NODE_MASTER : n->type == NODE_STANDBY;
}

/* render_promote writes the Promote Status table and the in-sync verdict. */
static void render_promote(FILE *out, const struct status_model *m)
{
	static const char *const head[] = {"DB Type", "Address", "XLog Loc", "Info"};
	struct table t = {.ncols = 4};
	table_measure(&t, head);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < m->n_nodes; i++) {
			const struct status_node *n = &m->nodes[i];
			if (!in_promote_pass(n, pass))
				continue;
			const char *row[] = {status_node_type_name(n->type), n->address,
			                     xlog_cell(n), n->xloginfo};
			table_measure(&t, row);
		}
	}
	fprintf(out, "Promote Status:\n\n");
	table_print(out, &t, head);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < m->n_nodes; i++) {
			const struct status_node *n = &m->nodes[i];
			if (!in_promote_pass(n, pass))
				continue;
			const char *row[] = {status_node_type_name(n->type), n->address,
			                     xlog_cell(n), n->xloginfo};
			table_print(out, &t, row);
		}
	}
	fprintf(out, "\n\t%s\n\n", verdict_text(sync_verdict(m)));
}

/* render_idle writes the Idle Node Status table. */
static void render_idle(FILE *out, const struct status_model *m)
{
	static const char *const head[] = {"Address", "XLog Loc", "Info"};
	struct table t = {.ncols = 3};
	size_t n_idle = 0;
	table_measure(&t, head);
	for (size_t i = 0; i < m->n_nodes; i++) {
		const struct status_node *n = &m->nodes[i];
		if (n->type != NODE_IDLE)
			continue;
		const char *row[] = {n->address, xlog_cell(n), n->xloginfo};
		table_measure(&t, row);
		n_idle++;
	}
	fprintf(out, "Idle Node Status (idle nodes ignored in XLog location comparisons):\n\n");
	if (n_idle == 0) {
		fprintf(out, "\t(No idle nodes.)\n");
		return;
	}
	table_print(out, &t, head);
	for (size_t i = 0; i < m->n_nodes; i++) {
		const struct status_node *n = &m->nodes[i];
		if (n->type != NODE_IDLE)
			continue;
		const char *row[] = {n->address, xlog_cell(n), n->xloginfo};
		table_print(out, &t, row);
	}
}

/* status_render_text writes the whole human-readable report. */
void status_render_text(FILE *out, const struct status_model *m)
{
	render_agents(out, m);
	print_list(out, "Allowed node host list:", m->allowed, m->n_allowed);
	print_list(out, "Standby priority host list:", m->priority, m->n_priority);
	render_promote(out, m);
	render_idle(out, m);
	if (m->failover.present) {
		const struct status_failover *f = &m->failover;
		fprintf(out, "\nFailover:\n\n\tMaster record: %s\n",
		        f->master[0] ? f->master : "(none)");
		if (f->serial > 0)
			fprintf(out, "\tLast promotion: #%llu of %s, phase %s\n", f->serial,
			        f->candidate, f->phase);
		else
			fprintf(out, "\tLast promotion: (none)\n");
		fprintf(out, "\tLatest decision: %s\n", f->decision);
	}
	if (m->n_messages > 0) {
		fprintf(out, "\nMessages:\n");
		for (size_t i = 0; i < m->n_messages; i++)
			fprintf(out, "\t%s\n", m->messages[i]);
	}
}
