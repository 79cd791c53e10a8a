pub mod lua;
