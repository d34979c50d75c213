/* Host check of firmware/esp32s3/main/model_partition.c: the esp_partition_*
 * calls it makes, served from a RAM "flash" (erase to 0xFF, writes only clear
 * bits, mmap of whole 64 KiB pages with the pointer moved to the requested
 * offset, as esp_partition.h documents), with the core's store and upload.
 * Usage: model-slots-test BLOB PARTITION_BYTES. Prints one line per case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_partition.h"
#include "model_partition.h"

static uint8_t *flash;
static esp_partition_t part = {NULL, (esp_partition_type_t)0x40, (esp_partition_subtype_t)0, 0x110000, 0, 4096, "model", false};
static int maps, bad_calls;

const esp_partition_t *esp_partition_find_first(esp_partition_type_t t, esp_partition_subtype_t s, const char *label)
{
    return (t == 0x40 && s == 0 && !strcmp(label, "model") && part.size) ? &part : NULL;
}
esp_err_t esp_partition_read(const esp_partition_t *p, size_t off, void *dst, size_t n)
{
    if (off > p->size || n > p->size - off) { bad_calls++; return 0x102; }
    memcpy(dst, flash + off, n);
    return ESP_OK;
}
esp_err_t esp_partition_write(const esp_partition_t *p, size_t off, const void *src, size_t n)
{
    size_t i;
    if (off > p->size || n > p->size - off) { bad_calls++; return 0x102; }
    for (i = 0; i < n; i++) flash[off + i] &= ((const uint8_t *)src)[i];
    return ESP_OK;
}
esp_err_t esp_partition_erase_range(const esp_partition_t *p, size_t off, size_t n)
{
    if (off % p->erase_size || n % p->erase_size || off > p->size || n > p->size - off) { bad_calls++; return 0x102; }
    memset(flash + off, 0xFF, n);
    return ESP_OK;
}
esp_err_t esp_partition_mmap(const esp_partition_t *p, size_t off, size_t n, esp_partition_mmap_memory_t m, const void **out,
                             esp_partition_mmap_handle_t *h)
{
    (void)m;
    if (off > p->size || n > p->size - off) { bad_calls++; return 0x102; }
    if ((p->address + off) % 0x10000) bad_calls++; /* the app maps from page starts */
    *out = flash + off;
    *h = 1;
    maps++;
    return ESP_OK;
}
void esp_partition_munmap(esp_partition_mmap_handle_t h) { (void)h; maps--; }
const char *esp_err_to_name(esp_err_t e) { return e ? "ESP_FAIL" : "ESP_OK"; }

static void report(const char *name)
{
    static lmf_blob blob;
    model_partition info;
    char why[400];
    int r = model_partition_open(&blob, &info, why, sizeof why);
    printf("%s: %s slot=0x%x bytes=%u next_seq=%u maps=%d bad=%d why=%s\n", name, r == 0 ? "ok" : "none", (unsigned)info.slot_offset,
           (unsigned)info.blob_bytes, (unsigned)info.next_seq, maps, bad_calls, r == 0 ? "" : why);
    maps = 0;
}

int main(int argc, char **argv)
{
    FILE *f;
    long n;
    uint8_t *blob;
    model_partition info;
    lmf_blob b;
    char why[400];
    uint32_t s1, crc;
    size_t need;
    if (argc < 3) return 2;
    part.size = (uint32_t)strtoul(argv[2], NULL, 0);
    flash = malloc(part.size);
    memset(flash, 0xFF, part.size);
    f = fopen(argv[1], "rb");
    if (!f) return 3;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    blob = malloc((size_t)n);
    if (fread(blob, 1, (size_t)n, f) != (size_t)n) return 3;
    fclose(f);
    s1 = lmf_store_slot1(part.size);
    crc = lmf_crc32(0, blob, (size_t)n);
    printf("slot1=0x%x flash=0x%x journal=0x%x\n", (unsigned)s1, (unsigned)(part.address + s1), (unsigned)lmf_store_journal(part.size));

    report("erased");
    memcpy(flash, blob, (size_t)n);
    report("slot0");
    /* an upload into slot 1 through the app's lmf_flash_io, then its commit */
    model_partition_open(&b, &info, why, sizeof why);
    maps = 0;
    if (info.io.erase(info.io.ctx, s1, ((uint32_t)n + 4095) & ~4095u) || info.io.write(info.io.ctx, s1, blob, (size_t)n)) printf("io failed\n");
    if (info.io.erase(info.io.ctx, s1 + 1, 4096) == 0) printf("unaligned erase accepted\n");
    if (model_partition_check(&info, s1, (uint32_t)n, &need, why, sizeof why) != 0 || need == 0 || maps != 0) printf("check failed: %s\n", why);
    if (lmf_store_commit(&info.io, info.next_seq, s1, (uint32_t)n, crc)) printf("commit failed\n");
    report("committed-slot1");
    flash[s1 + (uint32_t)n - 1] ^= 1;
    report("slot1-corrupt");
    if (model_partition_check(&info, s1, (uint32_t)n, &need, why, sizeof why) == 0) printf("check accepted a corrupt blob\n");
    flash[s1 + (uint32_t)n - 1] ^= 1;
    memset(flash, 0xFF, 4096); /* slot 0 gone: slot 1 still runs */
    report("slot0-erased");
    flash[s1 + 100] ^= 0x10;
    report("both-bad");
    part.size = 0;
    report("no-partition");
    return 0;
}
