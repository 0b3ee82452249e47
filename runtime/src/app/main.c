/*
 * main.c - the default main() for a function: the function author writes
 * zc_function_setup() and links the library.  This object sits in the
 * static archive, so the linker takes it only when the program has no
 * main() of its own (a Check test, or an author who calls zc_main).
 */
#include "zenith.h"

int main(int argc, char **argv);

int
main(int argc, char **argv)
{
	return zc_main(argc, argv, zc_function_setup);
}
