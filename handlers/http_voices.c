/* handlers/http_voices.c — PUT and DELETE /v1/speakers/{id}: voices added and removed without a restart.
 *
 * DESIGN: the files live in voices_dir as <id>.safetensors (what tools/export/add_speaker.py writes for a
 * bundle); the model bundle itself stays read-only. A PUT writes the body to a hidden temporary file in
 * voices_dir, has the engine validate it exactly as a load would (sched_check_voice: shapes, dtypes,
 * sizes, finite values), then renames it into place (atomic on one file system) and fsyncs the
 * directory; a DELETE unlinks the file. Both then ask the worker to reload the voices before its next
 * job (sched_reload_voices): a request already running keeps its voice, and GET /v1/speakers lists the
 * new set once the worker has loaded it (the reply says so). File changes are serialized by voices_mu;
 * the count limit (max_voices) and the size limit (max_voice_bytes, checked from Content-Length and
 * while the body arrives) are enforced here. The routes exist only with admin_api_keys and voices_dir
 * set (http.c's early checks: 404 otherwise, 401/403 without an admin key).
 */
#include "handlers/http_impl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#define VOICE_SUFFIX ".safetensors"

static int voice_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
	if (fd >= 0)
		close(fd);
	return rc;
}

static size_t voice_count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name), sfx = sizeof VOICE_SUFFIX - 1;
		if (len > sfx && de->d_name[0] != '.' && strcmp(de->d_name + len - sfx, VOICE_SUFFIX) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int voice_write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	const char *p = data;
	if (fd < 0)
		return -1;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	if (fsync(fd) != 0) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static enum MHD_Result voice_refused(struct conn *c, int put, int status, const char *field, const char *msg)
{
	struct http_server *h = c->srv;
	atomic_fetch_add(put ? &h->voice_puts_refused : &h->voice_deletes_refused, 1);
	return http_send_error(c, status, field, msg, NULL, NULL);
}

static enum MHD_Result voice_put(struct conn *c, const char *id)
{
	static atomic_uint seq;
	struct http_server *h = c->srv;
	const char *dir = h->cfg.voices_dir;
	char final[PATH_MAX], tmp[PATH_MAX], err[512], msg[700];
	struct stat st;
	int existed, rc;

	if (buf_len(&c->body) == 0)
		return voice_refused(c, 1, 400, "body",
				     "empty body: send the speaker file tools/export/add_speaker.py writes");
	if (snprintf(final, sizeof final, "%s/%s" VOICE_SUFFIX, dir, id) >= (int)sizeof final ||
	    snprintf(tmp, sizeof tmp, "%s/.put-%s-%d-%u.tmp", dir, id, (int)getpid(),
		     atomic_fetch_add(&seq, 1)) >= (int)sizeof tmp)
		return voice_refused(c, 1, 500, NULL, "voices_dir path too long");
	pthread_mutex_lock(&h->voices_mu);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		snprintf(msg, sizeof msg, "voices_dir %.300s: %s", dir, strerror(errno));
		pthread_mutex_unlock(&h->voices_mu);
		return voice_refused(c, 1, 500, NULL, msg);
	}
	existed = stat(final, &st) == 0;
	if (!existed && voice_count_files(dir) >= h->cfg.max_voices) {
		pthread_mutex_unlock(&h->voices_mu);
		snprintf(msg, sizeof msg,
			 "voices_dir already holds %zu voices (max_voices): delete one first",
			 h->cfg.max_voices);
		return voice_refused(c, 1, 409, NULL, msg);
	}
	if (voice_write_file(tmp, buf_data(&c->body), buf_len(&c->body)) != 0) {
		snprintf(msg, sizeof msg, "cannot write %.300s: %s", tmp, strerror(errno));
		unlink(tmp);
		pthread_mutex_unlock(&h->voices_mu);
		return voice_refused(c, 1, 500, NULL, msg);
	}
	buf_free(&c->body);
	rc = sched_check_voice(h->sched, tmp, err, sizeof err);
	if (rc != CV_OK) {
		unlink(tmp);
		pthread_mutex_unlock(&h->voices_mu);
		if (rc == CV_ENOTREADY || rc == CV_EUNSUPPORTED) {
			snprintf(msg, sizeof msg, "cannot change voices now: %s", err);
			return voice_refused(c, 1, rc == CV_ENOTREADY ? 503 : 409, NULL, msg);
		}
		snprintf(msg, sizeof msg, "not a usable speaker file: %s", err);
		return voice_refused(c, 1, 422, "body", msg);
	}
	if (rename(tmp, final) != 0) {
		snprintf(msg, sizeof msg, "cannot install %.300s: %s", final, strerror(errno));
		unlink(tmp);
		pthread_mutex_unlock(&h->voices_mu);
		return voice_refused(c, 1, 500, NULL, msg);
	}
	voice_fsync_dir(dir);
	sched_reload_voices(h->sched);
	pthread_mutex_unlock(&h->voices_mu);
	atomic_fetch_add(&h->voice_puts_ok, 1);
	log_info("http", "voice '%s' %s in %s (request %s)", id, existed ? "replaced" : "added", dir,
		 c->request_id);
	return http_send_json(
	    c, existed ? 200 : 201,
	    json_pack("{s:s, s:b, s:s}", "id", id, "replaced", existed, "status",
		      "stored; the worker loads it before its next job (GET /v1/speakers lists it "
		      "then)"));
}

static enum MHD_Result voice_delete(struct conn *c, const char *id)
{
	struct http_server *h = c->srv;
	char final[PATH_MAX], msg[400];
	const struct sched_voices *v;
	const struct engine_speaker *sp = NULL;
	int bundle_voice, is_default;

	if (snprintf(final, sizeof final, "%s/%s" VOICE_SUFFIX, h->cfg.voices_dir, id) >= (int)sizeof final)
		return voice_refused(c, 0, 500, NULL, "voices_dir path too long");
	v = sched_voices_get(h->sched);
	for (size_t i = 0; i < sched_voices_count(v); i++)
		if (strcmp(sched_voices_at(v, i)->id, id) == 0)
			sp = sched_voices_at(v, i);
	bundle_voice = sp && sp->source && strcmp(sp->source, "voices_dir") != 0;
	is_default = v && strcmp(sched_voices_default(v), id) == 0;
	sched_voices_put(v);
	pthread_mutex_lock(&h->voices_mu);
	if (access(final, F_OK) != 0) {
		pthread_mutex_unlock(&h->voices_mu);
		snprintf(msg, sizeof msg,
			 bundle_voice ? "voice '%s' belongs to the model bundle, which is read-only"
				      : "no voice '%s' in voices_dir",
			 id);
		return voice_refused(c, 0, bundle_voice ? 409 : 404, NULL, msg);
	}
	if (is_default) {
		pthread_mutex_unlock(&h->voices_mu);
		snprintf(msg, sizeof msg,
			 "voice '%s' is the default voice: make another one the default first", id);
		return voice_refused(c, 0, 409, NULL, msg);
	}
	if (unlink(final) != 0) {
		snprintf(msg, sizeof msg, "cannot remove %.300s: %s", final, strerror(errno));
		pthread_mutex_unlock(&h->voices_mu);
		return voice_refused(c, 0, 500, NULL, msg);
	}
	voice_fsync_dir(h->cfg.voices_dir);
	sched_reload_voices(h->sched);
	pthread_mutex_unlock(&h->voices_mu);
	atomic_fetch_add(&h->voice_deletes_ok, 1);
	log_info("http", "voice '%s' deleted from %s (request %s)", id, h->cfg.voices_dir, c->request_id);
	return http_send_json(
	    c, 200,
	    json_pack("{s:s, s:b, s:s}", "id", id, "deleted", 1, "status",
		      "removed; the worker drops it before its next job (a request running with it "
		      "finishes)"));
}

enum MHD_Result http_answer_voice(struct conn *c)
{
	const char *id = c->path + sizeof HTTP_VOICE_PREFIX - 1;
	int put = strcmp(c->method, "PUT") == 0;

	if (!engine_voice_id_valid(id) || strlen(c->path) >= sizeof c->path - 1)
		return voice_refused(
		    c, put, 400, "id",
		    "a voice id is 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter or digit");
	return put ? voice_put(c, id) : voice_delete(c, id);
}
