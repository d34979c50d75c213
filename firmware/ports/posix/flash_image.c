#define _GNU_SOURCE
#include "flash_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *why, size_t cap, const char *text, const char *path)
{
    snprintf(why, cap, text, path, strerror(errno));
    return -1;
}

int flash_open(flash_image *f, const char *path, uint32_t size, char *why, size_t cap)
{
    struct stat st;
    int fd;
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->stuck_addr = -1;
    fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) return fail(why, cap, "cannot open the flash image %s: %s", path);
    if (fstat(fd, &st) != 0) { close(fd); return fail(why, cap, "cannot read %s: %s", path); }
    if (st.st_size == 0) { /* new: an erased chip */
        uint8_t block[65536];
        uint32_t done;
        if (size == 0) size = 4u << 20;
        memset(block, 0xFF, sizeof block);
        for (done = 0; done < size; done += sizeof block)
            if (write(fd, block, sizeof block) != (ssize_t)sizeof block) { close(fd); return fail(why, cap, "cannot write %s: %s", path); }
    } else if (size != 0 && (uint64_t)st.st_size != size) {
        snprintf(why, cap, "the flash image %s is %lld bytes, not the %u asked for: delete it or leave out --flash-size", path,
                 (long long)st.st_size, size);
        close(fd);
        return -1;
    } else {
        size = (uint32_t)st.st_size;
    }
    if (size < (1u << 20) || size > (128u << 20) || size % (1u << 20) != 0) {
        snprintf(why, cap, "the flash image %s is %u bytes: a flash chip has a whole number of MB (1 to 128)", path, size);
        close(fd);
        return -1;
    }
    f->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (f->mem == MAP_FAILED) { f->mem = NULL; close(fd); return fail(why, cap, "cannot map %s: %s", path); }
    f->fd = fd;
    f->size = size;
    return 0;
}

int flash_open_memory(flash_image *f, uint32_t size)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->stuck_addr = -1;
    f->mem = malloc(size);
    if (!f->mem) return -1;
    memset(f->mem, 0xFF, size);
    f->size = size;
    return 0;
}

void flash_close(flash_image *f)
{
    if (!f->mem) return;
    if (f->fd >= 0) {
        msync(f->mem, f->size, MS_SYNC);
        munmap(f->mem, f->size);
        close(f->fd);
    } else {
        free(f->mem);
    }
    f->mem = NULL;
}

static int inside(const flash_image *f, uint32_t addr, size_t len)
{
    return f->mem && addr <= f->size && len <= f->size - addr;
}

int flash_read(const flash_image *f, uint32_t addr, void *dst, size_t len)
{
    if (!inside(f, addr, len)) return -1;
    memcpy(dst, f->mem + addr, len);
    return 0;
}

const uint8_t *flash_at(const flash_image *f, uint32_t addr, size_t len)
{
    return inside(f, addr, len) ? f->mem + addr : NULL;
}

int flash_erase(flash_image *f, uint32_t addr, uint32_t len)
{
    if (addr % FLASH_SECTOR || len % FLASH_SECTOR || !inside(f, addr, len)) return -1;
    memset(f->mem + addr, 0xFF, len);
    f->erases += len / FLASH_SECTOR;
    return 0;
}

int flash_write(flash_image *f, uint32_t addr, const void *src, size_t len)
{
    const uint8_t *p = src;
    size_t i;
    if (!inside(f, addr, len)) return -1;
    for (i = 0; i < len; i++) f->mem[addr + i] &= p[i]; /* NOR: bits only go from 1 to 0 */
    if (f->stuck_addr >= addr && f->stuck_addr < (int64_t)addr + (int64_t)len && (f->mem[f->stuck_addr] & f->stuck_bit) == 0) {
        f->mem[f->stuck_addr] |= f->stuck_bit; /* the worn cell */
        if (f->stuck_once) f->stuck_addr = -1;
    }
    f->writes++;
    return 0;
}

uint8_t flash_size_code(uint32_t size)
{
    uint8_t code = 0x14; /* 1 MB */
    while (code < 0x1B && (1u << (code - 0x14)) * (1u << 20) < size) code++;
    return code;
}
