// SPDX-License-Identifier: MIT
/*
 * For process_raw's failed-dlopen test: needs a symbol nothing defines, so
 * dlopen(RTLD_NOW) maps it, fails to relocate it and ld.so unmaps it again.
 */
extern int mmn_raw_nowhere_defined(int);

int mmn_raw_badlib_fn(int x)
{
	return mmn_raw_nowhere_defined(x) + 1;
}
