/*
 * test/sanitize/preload.c: lets an uninstrumented postgres (and psql, initdb)
 * start with the AddressSanitizer runtime preloaded.
 *
 * ASan initialises itself in the first malloc it sees.  Some libraries that
 * PostgreSQL links (libgpg-error, p11-kit) call bindtextdomain or newlocale
 * from their constructors, which run before ASan's own; glibc takes its
 * gettext or locale lock, calls malloc, ASan initialises inside the lock and
 * leaves it broken, and the next call blocks forever.  This library comes
 * right after libasan in LD_PRELOAD: its wrappers of those entry points call
 * malloc once before the real function takes its lock, so ASan initialises
 * outside it.  It is not instrumented and does nothing else.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libintl.h>
#include <locale.h>
#include <stdlib.h>

/* The first malloc initialises ASan; make it happen here, holding no lock */
static void
warm(void)
{
	static int	done;
	void	   *volatile p;		/* volatile: the compiler may not drop the pair */

	if (!done)
	{
		done = 1;
		p = malloc(1);
		free(p);
	}
}

__attribute__((constructor))
static void
preload_init(void)
{
	warm();
}

char *
bindtextdomain(const char *domain, const char *dir)
{
	static char *(*real) (const char *, const char *);

	warm();
	if (!real)
		real = dlsym(RTLD_NEXT, "bindtextdomain");
	return real(domain, dir);
}

locale_t
newlocale(int mask, const char *name, locale_t base)
{
	static		locale_t(*real) (int, const char *, locale_t);

	warm();
	if (!real)
		real = dlsym(RTLD_NEXT, "newlocale");
	return real(mask, name, base);
}
