#include <stdio.h>
#ifndef ARCH
#define ARCH "Undefined"
#endif

int main() {
  printf("Hello, my architecture is %s\n", ARCH);
}
