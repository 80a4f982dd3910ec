/*
 * STAND-IN for nbdkit's vddk plugin together with VMware's VDDK library (libvixDiskLib), for the vddk importer
 * tests only (test/importer/vddk.test.ts; built with gcc at test time by test/support/vddk.ts).
 *
 * Why a stand-in: VDDK is proprietary and not redistributable, and Debian stopped shipping nbdkit's vddk plugin in
 * nbdkit 1.16.1-2 ("Stop distributing the VDDK plugin"), so neither exists on this machine. nbdkit itself stays
 * real: this is an nbdkit plugin named "vddk" that takes the real plugin's parameters (nbdkit-vddk-plugin(1):
 * libdir, server, user, password, thumbprint, vm, snapshot, transports, config, file) and behaves as the pair would
 * for the importer: it needs the VDDK library in libdir/lib64 (what the user's init image provides), checks the
 * credentials and the server thumbprint, opens the disk by its datastore path at a snapshot, logs VDDK's version
 * and the ESX host it connected to the way VDDK does, and serves a raw image file with its extents.
 *
 * What it serves comes from <libdir>/cdi-vddk-standin.conf, one setting per line:
 *   version 8.0.3            build 21999999            host esx1.test.local
 *   user NAME                password PASS (both: the rest of the line)         thumbprint AA:BB:…
 *   abort-after BYTES        (optional: reads fail once this many bytes were served, as if the server dropped NFC)
 *   disk SNAPSHOT IMAGE FILE (SNAPSHOT: a snapshot moref or "-" for none; IMAGE: a raw file; FILE: the rest of
 *                             the line, the datastore path, e.g. "[LocalDS_0] vm/disk1.vmdk")
 */
#define _GNU_SOURCE
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS

/* The real plugin's debug flags (-D vddk.datapath=0 -D vddk.stats=1), so nbdkit accepts them. */
NBDKIT_DLL_PUBLIC int vddk_debug_datapath = 1;
NBDKIT_DLL_PUBLIC int vddk_debug_stats = 0;

static char *libdir, *server, *user, *password, *thumbprint, *vm, *snapshot, *transports, *config, *file;

#define MAX_DISKS 16
struct disk { char snapshot[128]; char image[1024]; char file[1024]; };
static struct {
  char version[64], build[64], host[256], user[256], password[256], thumbprint[128];
  long long abort_after;
  struct disk disks[MAX_DISKS];
  int ndisks;
} conf = { .abort_after = -1 };

static long long served;

static int
set (char **field, const char *key, const char *value)
{
  free (*field);
  *field = strdup (value);
  if (*field == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  (void) key;
  return 0;
}

static int
standin_config (const char *key, const char *value)
{
  if (strcmp (key, "password") == 0) {
    free (password);
    return nbdkit_read_password (value, &password);
  }
  if (strcmp (key, "libdir") == 0) return set (&libdir, key, value);
  if (strcmp (key, "server") == 0) return set (&server, key, value);
  if (strcmp (key, "user") == 0) return set (&user, key, value);
  if (strcmp (key, "thumbprint") == 0) return set (&thumbprint, key, value);
  if (strcmp (key, "vm") == 0) return set (&vm, key, value);
  if (strcmp (key, "snapshot") == 0) return set (&snapshot, key, value);
  if (strcmp (key, "transports") == 0) return set (&transports, key, value);
  if (strcmp (key, "file") == 0) return set (&file, key, value);
  if (strcmp (key, "config") == 0) {
    /* VDDK reads its configuration file at init; the tests look for these lines in the log. */
    FILE *f = fopen (value, "r");
    char line[512];
    if (f == NULL) {
      nbdkit_error ("VixDiskLib_InitEx: cannot read the configuration file %s: %m", value);
      return -1;
    }
    while (fgets (line, sizeof line, f) != NULL) {
      line[strcspn (line, "\n")] = 0;
      nbdkit_debug ("VixDiskLib: config: %s", line);
    }
    fclose (f);
    return set (&config, key, value);
  }
  nbdkit_error ("unknown parameter '%s'", key);
  return -1;
}

static void
copy_word (char *dst, size_t n, const char *src)
{
  snprintf (dst, n, "%s", src);
  dst[strcspn (dst, " \t\n")] = 0;
}

static int
read_conf (void)
{
  char path[1200], line[2200];
  FILE *f;

  snprintf (path, sizeof path, "%s/cdi-vddk-standin.conf", libdir);
  f = fopen (path, "r");
  if (f == NULL) {
    nbdkit_error ("VixDiskLib_InitEx: %s: %m (the stand-in's configuration)", path);
    return -1;
  }
  while (fgets (line, sizeof line, f) != NULL) {
    char *v = strchr (line, ' ');
    line[strcspn (line, "\n")] = 0;
    if (v == NULL) continue;
    *v++ = 0;
    if (strcmp (line, "version") == 0) copy_word (conf.version, sizeof conf.version, v);
    else if (strcmp (line, "build") == 0) copy_word (conf.build, sizeof conf.build, v);
    else if (strcmp (line, "host") == 0) copy_word (conf.host, sizeof conf.host, v);
    else if (strcmp (line, "user") == 0) snprintf (conf.user, sizeof conf.user, "%s", v);
    else if (strcmp (line, "password") == 0) snprintf (conf.password, sizeof conf.password, "%s", v);
    else if (strcmp (line, "thumbprint") == 0) copy_word (conf.thumbprint, sizeof conf.thumbprint, v);
    else if (strcmp (line, "abort-after") == 0) conf.abort_after = atoll (v);
    else if (strcmp (line, "disk") == 0 && conf.ndisks < MAX_DISKS) {
      struct disk *d = &conf.disks[conf.ndisks++];
      char *image = strchr (v, ' '), *name;
      if (image == NULL || (name = strchr (image + 1, ' ')) == NULL) {
        nbdkit_error ("%s: bad disk line", path);
        fclose (f);
        return -1;
      }
      *image++ = 0;
      *name++ = 0;
      snprintf (d->snapshot, sizeof d->snapshot, "%s", v);
      snprintf (d->image, sizeof d->image, "%s", image);
      snprintf (d->file, sizeof d->file, "%s", name);
    }
  }
  fclose (f);
  return 0;
}

static int
standin_config_complete (void)
{
  char lib[1200];
  struct stat st;

  if (libdir == NULL) libdir = strdup ("/usr/lib/vmware-vix-disklib");
  if (file == NULL) {
    nbdkit_error ("you must supply the file=<FILENAME> parameter after the plugin name on the command line");
    return -1;
  }
  if (server != NULL && (user == NULL || vm == NULL)) {
    nbdkit_error ("when server is given, user and vm must be given too");
    return -1;
  }
  snprintf (lib, sizeof lib, "%s/lib64/libvixDiskLib.so.8", libdir);
  if (stat (lib, &st) == -1) {
    nbdkit_error ("%s: cannot open shared object file: No such file or directory\n"
                  "If '%s' is located on a non-standard path you may need to\n"
                  "set libdir=/path/to/vmware-vix-disklib-distrib.", lib, "libvixDiskLib.so.8");
    return -1;
  }
  if (read_conf () == -1) return -1;
  nbdkit_debug ("VMware VixDiskLib (%s) Release build-%s", conf.version, conf.build);
  return 0;
}

struct handle { int fd; };

static void *
standin_open (int readonly)
{
  struct handle *h;
  int i;

  (void) readonly;
  if (server != NULL) {
    if (thumbprint == NULL || strcasecmp (thumbprint, conf.thumbprint) != 0) {
      nbdkit_error ("VixDiskLib_ConnectEx: Cannot connect to host %s: the server's SSL thumbprint %s does not "
                    "match the expected %s (SSL Exception: Verification parameters: PeerThumbprint: %s)",
                    server, conf.thumbprint, thumbprint ? thumbprint : "(none)", conf.thumbprint);
      return NULL;
    }
    if (strcmp (user, conf.user) != 0 || password == NULL || strcmp (password, conf.password) != 0) {
      nbdkit_error ("VixDiskLib_ConnectEx: Cannot connect to host %s: Cannot complete login due to an incorrect "
                    "user name or password.", server);
      return NULL;
    }
  }
  for (i = 0; i < conf.ndisks; i++) {
    const struct disk *d = &conf.disks[i];
    int want_snapshot = strcmp (d->snapshot, "-") != 0;
    if (strcmp (d->file, file) != 0) continue;
    if (want_snapshot != (snapshot != NULL) || (snapshot != NULL && strcmp (d->snapshot, snapshot) != 0))
      continue;
    h = malloc (sizeof *h);
    if (h == NULL) {
      nbdkit_error ("malloc: %m");
      return NULL;
    }
    h->fd = open (d->image, O_RDONLY | O_CLOEXEC);
    if (h->fd == -1) {
      nbdkit_error ("open %s: %m", d->image);
      free (h);
      return NULL;
    }
    nbdkit_debug ("DISKLIB-LINK  : Opened 'vpxa-nfcssl://%s@%s:902' (0xa): custom, %lld sectors / %s.",
                  file, conf.host, (long long) lseek (h->fd, 0, SEEK_END) / 512, "test disk");
    nbdkit_debug ("transport mode: nbdssl");
    return h;
  }
  nbdkit_error ("VixDiskLib_Open: %s: The system cannot find the file specified (snapshot %s)", file,
                snapshot ? snapshot : "none");
  return NULL;
}

static void
standin_close (void *handle)
{
  struct handle *h = handle;
  close (h->fd);
  free (h);
}

static int64_t
standin_get_size (void *handle)
{
  struct handle *h = handle;
  struct stat st;
  if (fstat (h->fd, &st) == -1) {
    nbdkit_error ("fstat: %m");
    return -1;
  }
  return st.st_size;
}

static int
standin_pread (void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;
  char *p = buf;

  (void) flags;
  if (conf.abort_after >= 0 && served + count > conf.abort_after) {
    nbdkit_error ("VixDiskLib_Read: NBD_ERR_NETWORK_CONNECT: the server closed the NFC connection");
    errno = EIO;
    return -1;
  }
  while (count > 0) {
    ssize_t r = pread (h->fd, p, count, offset);
    if (r == -1) {
      nbdkit_error ("pread: %m");
      return -1;
    }
    if (r == 0) { /* past the end of a short image file: zeros */
      memset (p, 0, count);
      break;
    }
    p += r;
    offset += r;
    count -= r;
  }
  served += (p - (char *) buf);
  return 0;
}

static int
standin_can_extents (void *handle)
{
  (void) handle;
  return 1;
}

/* What VixDiskLib_QueryAllocatedBlocks gives the real plugin: allocated ranges; the rest reads as zeros. */
static int
standin_extents (void *handle, uint32_t count, uint64_t offset, uint32_t flags, struct nbdkit_extents *extents)
{
  struct handle *h = handle;
  uint64_t end = offset + count;
  (void) flags;
  while (offset < end) {
    off_t data = lseek (h->fd, offset, SEEK_DATA);
    if (data == -1 && errno == ENXIO) data = end;
    else if (data == -1) {
      nbdkit_error ("lseek: %m");
      return -1;
    }
    if ((uint64_t) data > offset) {
      uint64_t len = ((uint64_t) data < end ? (uint64_t) data : end) - offset;
      if (nbdkit_add_extent (extents, offset, len, NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) == -1) return -1;
      offset += len;
      continue;
    }
    off_t hole = lseek (h->fd, offset, SEEK_HOLE);
    if (hole == -1) {
      nbdkit_error ("lseek: %m");
      return -1;
    }
    uint64_t len = ((uint64_t) hole < end ? (uint64_t) hole : end) - offset;
    if (nbdkit_add_extent (extents, offset, len, 0) == -1) return -1;
    offset += len;
  }
  return 0;
}

static void
standin_unload (void)
{
  free (libdir); free (server); free (user); free (password); free (thumbprint);
  free (vm); free (snapshot); free (transports); free (config); free (file);
}

static struct nbdkit_plugin plugin = {
  .name = "vddk",
  .longname = "STAND-IN for nbdkit's vddk plugin and VMware VDDK (cdi-ts tests only)",
  .version = "cdi-ts-standin",
  .magic_config_key = "file",
  .config = standin_config,
  .config_complete = standin_config_complete,
  .unload = standin_unload,
  .open = standin_open,
  .close = standin_close,
  .get_size = standin_get_size,
  .pread = standin_pread,
  .can_extents = standin_can_extents,
  .extents = standin_extents,
};

NBDKIT_REGISTER_PLUGIN (plugin)
